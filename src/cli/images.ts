/**
 * `edgeecho images build [--force]`: builds the emulator images (the missing ones, or all with --force) and says
 * what it built, which base it used and how long it took.
 */
import { loadConfig } from '../config.js';
import type { LevelWithSilent } from 'pino';
import { createLogger } from '../log.js';
import { createRuntime } from '../runtime/create-runtime.js';
import { processIo, UsageError, type CliIo } from './args.js';

export const usage = `usage: edgeecho images build [--force] [--<setting> VALUE ...]

Builds edgeecho/probe, edgeecho/stream and edgeecho/segmentation (names from EDGEECHO_IMAGE_*) from the
bundled emulators on EDGEECHO_BASE_IMAGE, or on an image made from the host node when that base is absent.
Images already present are kept unless --force is given. With --runtime local (or auto without an engine) it
bundles the emulators into $EDGEECHO_DATA_DIR/local/emulators instead, which the local runtime runs.
`;

/** argv is what follows `images build` (a leading "build" is accepted too, for `images` dispatched alone). */
export async function run(argv: string[], io: CliIo = processIo()): Promise<number> {
  const args = argv[0] === 'build' ? argv.slice(1) : argv;
  const force = args.includes('--force');
  const { config, rest } = loadConfig({ env: io.env, argv: args.filter((a) => a !== '--force') });
  if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}": expected --force or --<setting> VALUE`);
  const log = createLogger(config.logLevel === 'info' ? 'warn' : (config.logLevel as LevelWithSilent), { destination: 2, pretty: false });
  const runtime = await createRuntime(config, log);
  await runtime.check();
  const result = await runtime.prepare({ force });
  for (const b of result.built) io.stdout.write(`built    ${b.image}\n`);
  for (const p of result.present) io.stdout.write(`present  ${p.image} (kept; --force rebuilds)\n`);
  if (result.base) io.stdout.write(`base     ${result.base.image} (${result.base.source})\n`);
  io.stdout.write(`time     ${(result.durationMs / 1000).toFixed(1)} s\n`);
  return 0;
}

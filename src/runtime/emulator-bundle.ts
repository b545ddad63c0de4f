/**
 * The emulators as the runtimes run them: each bundled with esbuild into one CommonJS file (msgpackr included,
 * no node_modules beside it). One build for every runtime: Docker copies the files into its images, the local
 * runtime runs them with the host's node.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Role } from './driver.js';

export const ROLES: readonly Role[] = ['probe', 'stream', 'segmentation'];

const emulatorsDir = (): string => {
  // The sources are bundled, so they are read from the checkout: src/runtime -> repo root, one level more when
  // running the compiled dist/src/runtime (tsc does not emit emulators/ into dist/), or one level up from the
  // production bundle dist/edgeecho.mjs (scripts/bundle.ts).
  for (const up of ['../../emulators/', '../../../emulators/', '../emulators/']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(join(dir, 'probe.ts'))) return dir;
  }
  throw new Error(`emulator sources not found beside ${fileURLToPath(import.meta.url)}: expected emulators/probe.ts in the checkout`);
};

/**
 * Bundles each emulator into outDir/<role>.cjs; returns the paths and a sha256 over `recipe` (what the caller
 * does with the files, so a change of packing makes earlier builds stale) and the bundles.
 */
export async function bundleEmulators(outDir: string, recipe = ''): Promise<{ files: Record<Role, string>; sha256: string }> {
  const dir = emulatorsDir();
  const entryPoints: Record<string, string> = {};
  for (const role of ROLES) {
    const ts = join(dir, `${role}.ts`);
    entryPoints[role] = existsSync(ts) ? ts : join(dir, `${role}.js`);
  }
  // Loaded only when bundling: a running daemon has no other use for esbuild (about 2 MB of RSS). stop() ends
  // its service child (about 12 MB idle), which otherwise lived as long as the daemon and was SIGKILLed by
  // systemd at every stop of the unit.
  const { build, stop } = await import('esbuild');
  await build({
    entryPoints,
    outdir: outDir,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // msgpackr loads its optional native extractor in a try/catch; the pure-JS path is what ships.
    external: ['msgpackr-extract'],
    legalComments: 'none',
    logLevel: 'silent',
  }).finally(() => stop());
  const hash = createHash('sha256').update(recipe);
  const files = {} as Record<Role, string>;
  for (const role of ROLES) {
    files[role] = join(outDir, `${role}.cjs`);
    hash.update(await readFile(files[role]));
  }
  return { files, sha256: hash.digest('hex') };
}

/**
 * `edgeecho config`: the settings table, then the instance id the daemon on this data dir labels its objects with
 * (read from its records without creating them, so running it never makes an instance).
 */
import { join } from 'node:path';
import { loadConfig, settingsTable } from '../config.js';
import { readInstanceId, SESSION_DB_FILE } from '../sessions/sqlite-store.js';
import type { CliIo } from './args.js';

export const usage = `usage: edgeecho config [--<setting> VALUE ...]

Prints every EDGEECHO_* setting with its flag, default and meaning as a markdown table, then the instance id kept
in the data directory (EDGEECHO_DATA_DIR, or --data-dir): the io.edgeecho.instance label of every object the
daemon on it creates.
`;

export function instanceLine(dataDir: string): string {
  const path = join(dataDir, SESSION_DB_FILE);
  try {
    const id = readInstanceId(path);
    return id ? `instance: ${id} (${path})` : `instance: none yet (the daemon makes one at its first start on ${dataDir})`;
  } catch (err) {
    return `instance: unreadable: ${(err as Error).message} (${path})`;
  }
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { config, rest } = loadConfig({ env: io.env, argv });
  if (rest.length) {
    io.stderr.write(`edgeecho config: unknown argument ${rest.join(' ')}\n`);
    return 2;
  }
  io.stdout.write(`${settingsTable()}\n\n${instanceLine(config.dataDir)}\n`);
  return 0;
}

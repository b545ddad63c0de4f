/**
 * What a local runtime on a data dir holds, read without a driver (a driver adopts and rewrites records at start,
 * which must not happen under a daemon that still runs): its records on disk and the live processes it started,
 * found by their command lines. Shared by the conformance tests and the benches.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { localLayout } from '../src/runtime/local/layout.js';
import { RecordFiles } from '../src/runtime/local/records.js';
import { SESSION_MARKER_PREFIX } from '../src/runtime/local/spawn-role.js';

function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Live processes (zombies left out) whose command line mentions `text`: a data dir, a session marker. */
export function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.includes(text)) continue;
      if (!/\) Z /.test(readFileSync(`/proc/${entry}/stat`, 'utf8'))) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Names of the records (roles, networks) of these sessions (all when omitted) and pids of the live processes. */
export function localObjects(dataDir: string, sessions?: string[]): string[] {
  const wanted = (session: string): boolean => !sessions || sessions.includes(session);
  const { networks, processes } = new RecordFiles(localLayout(dataDir).sessions).loadAll(() => undefined);
  return [
    ...processes.filter((p) => wanted(p.session)).map((p) => p.name),
    ...networks.filter((n) => wanted(n.session)).map((n) => n.name),
    ...processesMentioning(join(localLayout(dataDir).root, ''))
      .filter((pid) => !sessions || sessions.some((session) => commandLine(pid).includes(`${SESSION_MARKER_PREFIX}${session}`)))
      .map((pid) => `pid ${pid}`),
  ];
}

/** SIGKILLs every live process that mentions `text` (a test's or bench's own unique data dir). */
export function killMentioning(text: string): void {
  for (const pid of processesMentioning(text)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

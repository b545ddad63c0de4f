/**
 * Starts one role as a child of the host's node: in its own session and process group (detached), stdin closed,
 * stdout and stderr appended to files, so it neither dies with the daemon nor blocks on a reader that is gone.
 * What the OS gives without cgroups is applied: a V8 heap ceiling from the role's memory limit, a lower CPU
 * priority once it is ready (lowerPriority), and a preloaded hook that writes the exit code to a file, so an exit is known even
 * after a daemon restart made the runtime a stranger to the process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { EdgeechoError } from '../../../protocol/errors.js';

/**
 * Niceness of every ready role: below the daemon, whose control plane stays responsive under a busy data plane.
 * Set after the ready line, not at spawn: node's start-up at a low priority on a loaded host would only delay
 * the session's ready (measured: segmented ready p50 228 ms niced from the start vs 135 ms for bare processes).
 */
export const DEFAULT_NICENESS = 10;
/** Share of the role's memory limit given to V8's old space; the rest is code, stacks and buffers. */
export const HEAP_SHARE = 0.75;
export const MIN_HEAP_MB = 16;
/** Marks a process as started by this runtime for this record: found again by /proc/<pid>/cmdline after a crash. */
export const MARKER_PREFIX = '--edgeecho-process=';
/** Names the session on the command line too, so `pgrep -f edgeecho-session=<id>` shows what runs for it. */
export const SESSION_MARKER_PREFIX = '--edgeecho-session=';

/** The preload (written beside the bundles by prepare): process.exit(code) and normal ends leave the code. */
export const EXIT_RECORDER_SOURCE = `'use strict';
const { writeFileSync } = require('node:fs');
const file = process.env.EDGEECHO_EXIT_FILE;
if (file) process.on('exit', (code) => { try { writeFileSync(file, String(code)); } catch {} });
`;

export interface RoleProcessSpec {
  id: string;
  session: string;
  /** ['node', script, ...] (node: the host's process.execPath) or another executable. */
  command: string[];
  env: Record<string, string>;
  memoryBytes: number;
  exitRecorder: string;
  stdoutPath: string;
  stderrPath: string;
  exitPath: string;
}

export function heapMb(memoryBytes: number): number {
  return Math.max(MIN_HEAP_MB, Math.floor((memoryBytes / 1024 / 1024) * HEAP_SHARE));
}

/** argv as executed: node gets the heap ceiling and the exit recorder before the script. */
export function argvFor(spec: Pick<RoleProcessSpec, 'id' | 'session' | 'command' | 'memoryBytes' | 'exitRecorder'>): [string, string[]] {
  const [exe, ...args] = spec.command;
  if (!exe) throw new EdgeechoError('BAD_REQUEST', `process ${spec.id}: empty command`);
  const markers = [`${MARKER_PREFIX}${spec.id}`, `${SESSION_MARKER_PREFIX}${spec.session}`];
  if (exe === 'node' || exe === process.execPath) {
    // After `--`: node would read a marker following `-e script` as one of its own options.
    return [process.execPath, [`--max-old-space-size=${heapMb(spec.memoryBytes)}`, '--require', spec.exitRecorder, ...args, '--', ...markers]];
  }
  return [exe, [...args, ...markers]];
}

/** Spawns the role; resolves once the pid exists (rejects when the executable cannot be run at all). */
export async function spawnRole(spec: RoleProcessSpec): Promise<ChildProcess> {
  const [exe, args] = argvFor(spec);
  const out = openSync(spec.stdoutPath, 'a', 0o640);
  const err = openSync(spec.stderrPath, 'a', 0o640);
  let child: ChildProcess;
  try {
    // A clean env (no daemon secrets, no NODE_OPTIONS of the daemon's tsx loader): what a container would see.
    child = spawn(exe, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', ...spec.env, EDGEECHO_EXIT_FILE: spec.exitPath },
      detached: true,
      stdio: ['ignore', out, err],
    });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  if (child.pid === undefined) {
    const error = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new EdgeechoError('RUNTIME_UNAVAILABLE', `cannot start ${exe} for process ${spec.id}: ${error.message}`);
  }
  // The daemon may exit while its children run on; only the exit event is listened to.
  child.unref();
  return child;
}

/** Lowers the role's CPU priority (DEFAULT_NICENESS); false when the process is gone. */
export function lowerPriority(pid: number): boolean {
  try {
    setPriority(pid, DEFAULT_NICENESS);
    return true;
  } catch {
    return false;
  }
}

/** Pids whose command line carries this record's marker: a process started just before a crash recorded its pid. */
export function findMarked(id: string): number[] {
  const marker = `${MARKER_PREFIX}${id}`;
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(marker)) found.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** What the data-plane benches share: child node processes with their JSON stdout lines, free ports, medians. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface NodeRun {
  code: number | null;
  lines: Array<Record<string, unknown>>;
  stderr: string;
}

export interface RunningNode {
  pid: number;
  /** The first stdout line with "event":"ready" (an emulator's ready line); rejects if the process ends first. */
  ready: Promise<Record<string, unknown>>;
  done: Promise<NodeRun>;
}

/** Starts `node args...` with only PATH and `env`; stdout is read as JSON lines; killed after timeoutMs. */
export function startNode(args: string[], env: Record<string, string>, timeoutMs = 60_000): RunningNode {
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let onReady!: (line: Record<string, unknown>) => void;
  let noReady!: (err: Error) => void;
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => ((onReady = resolve), (noReady = reject)));
  ready.catch(() => undefined);
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const m = /^(\{"event":"ready".*)$/m.exec(out);
    if (m) onReady(JSON.parse(m[1]!) as Record<string, unknown>);
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<NodeRun>((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      noReady(new Error(`${args.join(' ')} exited ${code} before its ready line: ${err.slice(-500)}`));
      const lines = out
        .split('\n')
        .filter((l) => l.trim().startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, lines, stderr: err });
    });
  });
  return { pid: child.pid!, ready, done };
}

export function runNode(args: string[], env: Record<string, string>, timeoutMs?: number): Promise<NodeRun> {
  return startNode(args, env, timeoutMs).done;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const CLOCK_TICKS_PER_S = 100;

/**
 * CPU seconds (user + system) of this process's children that have exited and been reaped so far, from
 * /proc/self/stat (cutime, cstime; Linux). The difference around a run is what its child processes used,
 * a figure that other work on a shared machine barely moves, unlike their throughput.
 */
export function childCpuSeconds(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // after "pid (comm) ", field 3 (state) is index 0; cutime and cstime are fields 16 and 17
    return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS_PER_S;
  } catch {
    return NaN;
  }
}

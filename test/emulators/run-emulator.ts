/**
 * Runs the emulators as plain node processes on loopback, from the same esbuild bundle the images ship.
 * Every process is bounded by a deadline and killed in `stopAll` so a failing test never leaves one behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameDecoder, encodeFrame } from '../../protocol/codec.js';
import { bundleEmulators } from '../../src/runtime/emulator-bundle.js';
import type { Role } from '../../src/runtime/driver.js';

let bundle: Promise<{ dir: string; files: Record<Role, string> }> | null = null;

export function emulatorBundle(): Promise<{ dir: string; files: Record<Role, string> }> {
  bundle ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeecho-emulators-test-'));
    const { files } = await bundleEmulators(dir);
    return { dir, files };
  })();
  return bundle;
}

export async function removeBundle(): Promise<void> {
  if (bundle) await rm((await bundle).dir, { recursive: true, force: true });
  bundle = null;
}

export interface Emulator {
  role: Role;
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  stderr: string;
  ready: Promise<Record<string, unknown>>;
  /** Resolves with the exit code and the stats line (the last line). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stats: Record<string, unknown> | undefined }>;
}

const running = new Set<ChildProcess>();

export async function startEmulator(role: Role, env: Record<string, string | number>): Promise<Emulator> {
  const { files } = await emulatorBundle();
  const child = spawn(process.execPath, [files[role]], {
    env: { PATH: process.env.PATH ?? '', EMULATOR_IDLE_TIMEOUT_MS: '10000', ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const em: Emulator = { role, child, lines: [], stderr: '', ready: null as never, exited: null as never };
  let onReady: (v: Record<string, unknown>) => void;
  let onNoReady: (e: Error) => void;
  em.ready = new Promise((resolve, reject) => ((onReady = resolve), (onNoReady = reject)));
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = JSON.parse(partial.slice(0, nl)) as Record<string, unknown>;
      partial = partial.slice(nl + 1);
      em.lines.push(line);
      if (line.event === 'ready') onReady(line);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (em.stderr += d.toString()));
  em.exited = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      running.delete(child);
      onNoReady(new Error(`${role} exited (${code ?? signal}) before ready: ${JSON.stringify(em.lines)} ${em.stderr.slice(-500)}`));
      const last = em.lines.at(-1);
      resolve({ code, signal, stats: last?.event === 'stats' ? last : undefined });
    });
  });
  em.ready.catch(() => undefined);
  return em;
}

/** Rejects when the promise does not settle within ms. */
export function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms))),
  ]);
}

export function stopAll(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** A port that was free a moment ago (for starting a client before its server). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as { port: number };
      s.close(() => resolve(a.port));
    });
  });
}

export interface ConsumerResult {
  details: Record<string, unknown> | null;
  frames: number;
  firstSeq: number;
  outOfOrder: number;
  end: Record<string, unknown> | null;
  closed: boolean;
}

/** A plain-mode client: reads the relayed frames, checks order, acks the end frame and waits for close. */
export function consume(port: number, options: { ack?: boolean } = {}): { socket: Socket; done: Promise<ConsumerResult> } {
  const socket = connect({ host: '127.0.0.1', port });
  const decoder = new FrameDecoder(32 * 1024 * 1024);
  const r: ConsumerResult = { details: null, frames: 0, firstSeq: -1, outOfOrder: 0, end: null, closed: false };
  let next = -1;
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      if (!f.ok) throw f.error;
      const v = f.value as Record<string, unknown>;
      if (v.type === 'details') {
        if (r.frames === 0) r.details = v;
      } else if (v.type === 'data') {
        const seq = v.seq as number;
        if (r.firstSeq < 0) r.firstSeq = seq;
        else if (seq !== next) r.outOfOrder++;
        next = seq + 1;
        r.frames++;
      } else if (v.type === 'end') {
        r.end = v;
        if (options.ack !== false) socket.write(encodeFrame({ type: 'ack', count: r.frames }));
      }
    }
  });
  socket.on('error', () => undefined);
  const done = new Promise<ConsumerResult>((resolve) =>
    socket.on('close', () => {
      r.closed = true;
      resolve(r);
    }),
  );
  return { socket, done };
}

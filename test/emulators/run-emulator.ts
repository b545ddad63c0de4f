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
import { bundleEmulators } from '../../src/runtime/docker/images.js';
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

export interface RawRead {
  /** Every byte received, in order. */
  bytes: Buffer;
  /** The stream's FIN arrived (read to EOF). */
  eof: boolean;
  /** Decoded frames of `bytes` (a cut-off last frame left out). */
  frames: Array<Record<string, unknown>>;
  end: Record<string, unknown> | null;
}

/**
 * A consumer as plain as `nc HOST PORT > file`: reads bytes, sends nothing. By default it reads to EOF and then
 * closes; `dropAfter` bytes it instead `destroy`s its socket (a crash or kill: RST when bytes are unread, else FIN)
 * or `end`s it (a half-close, as ncat does at stdin EOF: it reads on to EOF).
 */
export function readRaw(port: number, options: { dropAfter?: number; how?: 'destroy' | 'end' } = {}): { socket: Socket; done: Promise<RawRead> } {
  const socket = connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  let received = 0;
  let eof = false;
  let dropped = false;
  const maybeDrop = (): void => {
    if (dropped || options.dropAfter === undefined || received < options.dropAfter) return;
    dropped = true;
    if (options.how === 'end') socket.end();
    else socket.destroy();
  };
  socket.on('connect', maybeDrop);
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    received += chunk.length;
    maybeDrop();
  });
  socket.on('end', () => (eof = true));
  socket.on('error', () => undefined);
  const done = new Promise<RawRead>((resolve) =>
    socket.on('close', () => {
      const bytes = Buffer.concat(chunks);
      const frames: Array<Record<string, unknown>> = [];
      const decoder = new FrameDecoder(32 * 1024 * 1024);
      for (const f of decoder.push(bytes)) if (f.ok) frames.push(f.value as Record<string, unknown>);
      const last = frames.at(-1);
      resolve({ bytes, eof, frames, end: last?.type === 'end' ? last : null });
    }),
  );
  return { socket, done };
}

/** A probe and a plain stream on loopback; the stream waits `graceMs` for its first consumer. */
export async function startPlain(env: { count: number; payloadBytes?: number; rate?: number; graceMs?: number; idleMs?: number }): Promise<{ probe: Emulator; stream: Emulator; port: number }> {
  const idle = env.idleMs ?? 10_000;
  const probe = await startEmulator('probe', { PROBE_PORT: 0, PROBE_COUNT: env.count, PROBE_PAYLOAD_BYTES: env.payloadBytes ?? 64, PROBE_RATE: env.rate ?? 0, EMULATOR_IDLE_TIMEOUT_MS: idle });
  const { port: probePort } = await within(5000, 'probe ready', probe.ready);
  const stream = await startEmulator('stream', { PROBE_HOST: '127.0.0.1', PROBE_PORT: probePort as number, STREAM_PORT: 0, STREAM_GRACE_MS: env.graceMs ?? 60_000, EMULATOR_IDLE_TIMEOUT_MS: idle });
  const { port } = await within(5000, 'stream ready', stream.ready);
  return { probe, stream, port: port as number };
}

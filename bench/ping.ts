/**
 * Control-plane ping: requests/s and latency over one TCP connection, one at a time and pipelined (256 in
 * flight), against the daemon as shipped (the dist/edgeecho.mjs bundle) and against a raw echo server using the
 * same framing without dispatch, each in its own child process (the client runs here). Runs alternate; the best of RUNS is kept for each.
 * Last line: one JSON object with the figures and the daemon/echo ratios.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { encodeFrame, FrameSplitter, unpackValue } from '../protocol/codec.js';

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 3000);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const PIPELINE = Number(process.env.BENCH_PIPELINE ?? 256);

export interface ServerChild {
  port: number;
  pid: number;
  /** The EDGEECHO_METRICS listener's port, when the daemon was given one. */
  metricsPort?: number;
  /** Resident set size of the child (VmRSS from /proc/<pid>/status), once it has stopped moving. */
  rss(): Promise<number>;
  stop(): Promise<void>;
}

const root = fileURLToPath(new URL('..', import.meta.url));

/** VmRSS of any process, read here so the child needs no hook (and no --expose-gc) to be measured. */
export function vmRssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS line in /proc/${pid}/status: the bench reads RSS from Linux's /proc`);
  return Number(m[1]) * 1024;
}

/** Samples every 250 ms until two readings differ by under 256 KB (at most 5 s): RSS as it settles, no forced GC. */
async function settledRss(pid: number): Promise<number> {
  let last = vmRssBytes(pid);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const now = vmRssBytes(pid);
    if (Math.abs(now - last) < 256 * 1024) return now;
    last = now;
  }
  return last;
}

/**
 * The daemon as shipped: `npm run build`'s bundle, rebuilt here from the current sources (about a second),
 * run with node and nothing else, every component on (engine check, SQLite records, tracker, reaper, sweep).
 * Images are not built (--build-images false): the bench needs no emulators.
 */
export interface DaemonChildOptions {
  /** More flags, e.g. ['--metrics', '127.0.0.1:0']. */
  args?: string[];
  /** Records to start on (the caller removes it); default a fresh temp dir removed by stop(). */
  dataDir?: string;
}

async function startDaemon(options: DaemonChildOptions = {}): Promise<ServerChild> {
  const { bundle } = await import('../scripts/bundle.js');
  const script = await bundle();
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'edgeecho-bench-'));
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('EDGEECHO_')) env[k] = v;
  const args = ['daemon', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--build-images', 'false', '--log-level', 'info', '--max-connections', '100000', ...(options.args ?? [])];
  const child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let metricsPort: number | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the daemon logged no "listening" line within 30 s')), 30_000).unref();
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the daemon exited (${code}) before listening; its log is above`));
    });
    // JSON logs (stdout is a pipe); drained for the daemon's whole life so its writes never block.
    createInterface({ input: child.stdout }).on('line', (line) => {
      // logged before "listening" when EDGEECHO_METRICS is set
      if (line.includes('"metrics listening"')) metricsPort = (JSON.parse(line) as { port: number }).port;
      if (!line.includes('"listening"')) return;
      const entry = JSON.parse(line) as { msg: string; listeners: Array<{ address: { port?: number } }> };
      const tcp = entry.listeners.find((l) => l.address.port !== undefined);
      clearTimeout(timer);
      if (tcp) resolve(tcp.address.port!);
      else reject(new Error(`the daemon listens on no TCP port: ${line}`));
    });
  });
  return {
    port,
    pid: child.pid!,
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    rss: () => settledRss(child.pid!),
    async stop() {
      child.kill('SIGTERM');
      await exited;
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The raw echo baseline: plain JavaScript bundled by esbuild (dependencies left external), like the daemon. */
async function startEcho(): Promise<ServerChild> {
  const { build } = await import('esbuild');
  // under dist/ (ignored, the build output)
  const outfile = join(root, 'dist', 'bench', 'ping-server.mjs');
  await build({ entryPoints: [join(root, 'bench', 'ping-server.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile, logLevel: 'error' });
  const child = spawn(process.execPath, [outfile], { stdio: ['pipe', 'pipe', 'inherit'] });
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
  const { port, pid } = JSON.parse(first) as { port: number; pid: number };
  return {
    port,
    pid,
    rss: () => settledRss(pid),
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end();
      }),
  };
}

export function startServerChild(mode: 'daemon' | 'echo', options: DaemonChildOptions = {}): Promise<ServerChild> {
  return mode === 'daemon' ? startDaemon(options) : startEcho();
}

export interface Result {
  reqPerSec: number;
  p50us: number;
  p99us: number;
  count: number;
}

function openClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, noDelay: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends pings keeping `depth` in flight for DURATION_MS; latency per request from send to answer. */
export async function runLoad(port: number, depth: number, greeting: boolean): Promise<Result> {
  const socket = await openClient(port);
  const splitter = new FrameSplitter();
  const sentAt: number[] = [];
  const latencies: number[] = [];
  let next = 0;
  let done = 0;
  let skip = greeting ? 1 : 0;
  let stopAt = Infinity;
  const t0 = performance.now();
  stopAt = t0 + DURATION_MS;
  const send = (n: number): void => {
    if (n === 1) {
      sentAt[next] = performance.now();
      socket.write(encodeFrame({ id: next++, op: 'ping' }));
      return;
    }
    const frames: Buffer[] = [];
    const now = performance.now();
    for (let i = 0; i < n; i++) {
      sentAt[next] = now;
      frames.push(encodeFrame({ id: next++, op: 'ping' }));
    }
    socket.write(Buffer.concat(frames));
  };
  let end = t0;
  await new Promise<void>((resolve) => {
    socket.on('data', (chunk) => {
      let answered = 0;
      const now = performance.now();
      splitter.forEachFrame(chunk, (body) => {
        if (skip > 0) {
          skip--;
          return;
        }
        const f = unpackValue(body) as { id: number };
        latencies.push(now - sentAt[f.id]!);
        answered++;
      });
      done += answered;
      if (now < stopAt) {
        if (answered > 0) send(answered);
      } else if (done === next) {
        end = now;
        resolve();
      }
    });
    send(depth);
  });
  socket.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]! * 1000);
  return { reqPerSec: Math.round(done / ((end - t0) / 1000)), p50us: q(0.5), p99us: q(0.99), count: done };
}

export default async function main(): Promise<void> {
  const daemon = await startServerChild('daemon');
  const echo = await startServerChild('echo');
  const best: Record<string, Result> = {};
  const keep = (key: string, r: Result): void => {
    if (!best[key] || r.reqPerSec > best[key]!.reqPerSec) best[key] = r;
  };
  try {
    for (let run = 0; run < RUNS; run++) {
      keep('daemon-serial', await runLoad(daemon.port, 1, true));
      keep('echo-serial', await runLoad(echo.port, 1, false));
      keep('daemon-pipelined', await runLoad(daemon.port, PIPELINE, true));
      keep('echo-pipelined', await runLoad(echo.port, PIPELINE, false));
    }
  } finally {
    await Promise.all([daemon.stop(), echo.stop()]);
  }
  const row = (name: string, r: Result): string => `| ${name.padEnd(24)} | ${String(r.reqPerSec).padStart(9)} | ${String(r.p50us).padStart(8)} | ${String(r.p99us).padStart(8)} |`;
  const ratioSerial = best['daemon-serial']!.reqPerSec / best['echo-serial']!.reqPerSec;
  const ratioPipelined = best['daemon-pipelined']!.reqPerSec / best['echo-pipelined']!.reqPerSec;
  console.log(`ping over one connection, ${DURATION_MS} ms per run, best of ${RUNS}; pipelined = ${PIPELINE} in flight`);
  console.log('| load                     |     req/s |  p50 µs |  p99 µs |');
  console.log('|--------------------------|-----------|----------|----------|');
  for (const key of ['daemon-serial', 'echo-serial', 'daemon-pipelined', 'echo-pipelined']) console.log(row(key, best[key]!));
  console.log(`daemon/echo: serial ${(ratioSerial * 100).toFixed(0)}%, pipelined ${(ratioPipelined * 100).toFixed(0)}%  (targets: pipelined >= 150000 req/s and >= 50% of echo)`);
  console.log(
    JSON.stringify({
      bench: 'ping',
      daemon_serial_rps: best['daemon-serial']!.reqPerSec,
      echo_serial_rps: best['echo-serial']!.reqPerSec,
      daemon_pipelined_rps: best['daemon-pipelined']!.reqPerSec,
      echo_pipelined_rps: best['echo-pipelined']!.reqPerSec,
      daemon_pipelined_p50_us: best['daemon-pipelined']!.p50us,
      daemon_pipelined_p99_us: best['daemon-pipelined']!.p99us,
      daemon_serial_p50_us: best['daemon-serial']!.p50us,
      daemon_serial_p99_us: best['daemon-serial']!.p99us,
      ratio_serial: Number(ratioSerial.toFixed(3)),
      ratio_pipelined: Number(ratioPipelined.toFixed(3)),
    }),
  );
}

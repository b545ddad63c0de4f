/**
 * Control-plane ping: requests/s and latency over one TCP connection, one at a time and pipelined (256 in
 * flight), against the daemon and against a raw echo server using the same framing without dispatch, each in
 * its own child process (the client runs here). Runs alternate; the best of RUNS is kept for each.
 * Last line: one JSON object with the figures and the daemon/echo ratios.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
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
  /** Resident set size of the child, after a GC. */
  rss(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * The child runs plain JavaScript bundled by esbuild (dependencies left external), so its memory is the
 * daemon's and not the TypeScript loader's, as in a `npm run build` install.
 */
async function bundleServer(): Promise<string> {
  const { build } = await import('esbuild');
  const root = fileURLToPath(new URL('..', import.meta.url));
  // under dist/ (ignored, the build output): src/config.ts finds package.json from there
  const outfile = join(root, 'dist', 'bench', 'ping-server.mjs');
  await build({ entryPoints: [join(root, 'bench', 'ping-server.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile, logLevel: 'error' });
  return outfile;
}

export async function startServerChild(mode: 'daemon' | 'echo'): Promise<ServerChild> {
  const script = await bundleServer();
  const child = spawn(process.execPath, ['--expose-gc', script, mode], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const queue: Array<(line: string) => void> = [];
  lines.on('line', (line) => queue.shift()?.(line));
  const nextLine = (): Promise<string> => new Promise((resolve) => queue.push(resolve));
  const first = JSON.parse(await nextLine()) as { port: number; pid: number };
  return {
    ...first,
    async rss() {
      const answer = nextLine();
      child.stdin.write('rss\n');
      return (JSON.parse(await answer) as { rss: number }).rss;
    },
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end();
        child.kill('SIGTERM');
      }),
  };
}

interface Result {
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
async function runLoad(port: number, depth: number, greeting: boolean): Promise<Result> {
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

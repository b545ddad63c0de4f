/**
 * Consume throughput: COUNT frames (64-byte payload) of a plain session's stream read at its location by
 * `edgeecho consume --raw` (the CLI as shipped, stdout to /dev/null), by the client library's consume() (frame by
 * frame, a read's worth at a time with .batches(), and the checked payload bytes alone with .payloads()), and by
 * `edgeecho consume` writing JSON lines, each beside a raw socket read of the same stream (bytes to EOF, nothing
 * parsed) and a raw read that walks the frames in JS and only sums the payloads' CRC-32 (a verifying reader's
 * JS floor: .payloads() walks them in WebAssembly instead, protocol/wasm-frame-walk.ts).
 * `npm run bench -- consume [runs]`. Probe and stream run as local processes from the emulator bundles, a fresh
 * pair per reading; each consumer is its own process and times itself from its first byte to the end. Runs rotate
 * the order; the best and the median of each are reported, ratios of the best, and the readers' own CPU time per
 * million frames (the library's and the raw ones'), which a busy machine barely moves. Last line: one JSON object.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleEmulators } from '../src/runtime/emulator-bundle.js';
import { freePort, median, startNode } from './support/processes.js';

const COUNT = Number(process.env.BENCH_COUNT ?? 1_000_000);
const PAYLOAD = Number(process.env.BENCH_PAYLOAD_BYTES ?? 64);
const DEFAULT_RUNS = 5;
const TARGET = 0.8;

type Kind = 'raw socket' | 'raw read + CRC-32 only' | 'library consume()' | 'library .batches()' | 'library .payloads()' | 'CLI consume --raw' | 'CLI consume (JSON lines)';
const KINDS: Kind[] = ['raw socket', 'raw read + CRC-32 only', 'library consume()', 'library .batches()', 'library .payloads()', 'CLI consume --raw', 'CLI consume (JSON lines)'];
const CHILD_ROLE: Partial<Record<Kind, string>> = {
  'raw socket': 'raw',
  'raw read + CRC-32 only': 'raw-crc',
  'library consume()': 'library',
  'library .batches()': 'batches',
  'library .payloads()': 'payloads',
};

interface Sample {
  bytes: number;
  ms: number;
  /** The reader process's CPU time (bench/consume-child.ts only). */
  cpuMs?: number;
  ok: boolean;
}

/** A probe and a plain stream waiting for their first consumer; resolves with the stream's port. */
async function startStream(files: Record<string, string>): Promise<{ port: number; done: Promise<unknown> }> {
  const [probePort, port] = [await freePort(), await freePort()];
  const common = { EMULATOR_IDLE_TIMEOUT_MS: '30000' };
  const probe = startNode([files.probe!], { ...common, PROBE_PORT: String(probePort), PROBE_COUNT: String(COUNT), PROBE_PAYLOAD_BYTES: String(PAYLOAD) });
  const stream = startNode([files.stream!], { ...common, PROBE_HOST: '127.0.0.1', PROBE_PORT: String(probePort), STREAM_PORT: String(port), STREAM_MODE: 'plain', STREAM_GRACE_MS: '60000' });
  // Ready once it has the probe's details and listens; connecting to find out would start the stream.
  await stream.ready;
  return { port, done: Promise.all([probe.done, stream.done]) };
}

async function read(kind: Kind, files: Record<string, string>, cli: string): Promise<Sample> {
  const { port, done } = await startStream(files);
  let sample: Sample;
  const role = CHILD_ROLE[kind];
  if (role) {
    const child = startNode(['--import', 'tsx', fileURLToPath(new URL('./consume-child.ts', import.meta.url)), role, String(port)], {});
    const r = await child.done;
    const line = r.lines.at(-1) ?? {};
    sample = { bytes: Number(line.bytes), ms: Number(line.ms), cpuMs: Number(line.cpu_ms), ok: r.code === 0 && line.ok === true };
    if (!sample.ok) process.stderr.write(`${kind} failed: ${JSON.stringify(line)} ${r.stderr.slice(-500)}\n`);
  } else {
    const devNull = openSync('/dev/null', 'w');
    const args = [cli, 'consume', `127.0.0.1:${port}`, ...(kind === 'CLI consume --raw' ? ['--raw'] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', devNull, 'pipe'] });
    closeSync(devNull);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    // consume: 1000000 frames, 110000104 bytes, lost 0, out of order 0, checksum ok, 212.3 MB/s
    const m = /consume: (\d+) frames, (\d+) bytes, .*checksum ok, ([\d.]+) MB\/s/.exec(stderr);
    sample = m ? { bytes: Number(m[2]), ms: Number(m[2]) / 1e3 / Number(m[3]), ok: code === 0 && Number(m[1]) === COUNT } : { bytes: 0, ms: NaN, ok: false };
    if (!sample.ok) process.stderr.write(`${kind} failed (exit ${code}): ${stderr.slice(-500)}\n`);
  }
  await done;
  return sample;
}

export default async function consumeBench(argv: string[] = []): Promise<void> {
  const RUNS = Number(argv[0] ?? process.env.BENCH_RUNS ?? DEFAULT_RUNS);
  const dir = await mkdtemp(join(tmpdir(), 'edgeecho-bench-consume-'));
  try {
    const { files } = await bundleEmulators(dir);
    // The CLI as shipped (`npm run build`'s bundle), rebuilt from the current sources.
    const { bundle } = await import('../scripts/bundle.js');
    const cli = await bundle();
    const samples = new Map<Kind, Sample[]>(KINDS.map((k) => [k, []]));
    for (let run = 0; run < RUNS; run++) {
      // rotate the order so no kind always runs first (or last) on a machine warming up or busy
      for (let i = 0; i < KINDS.length; i++) {
        const kind = KINDS[(run + i) % KINDS.length]!;
        samples.get(kind)!.push(await read(kind, files, cli));
      }
    }
    const fps = (s: Sample): number => COUNT / (s.ms / 1000);
    const mbs = (s: Sample): number => s.bytes / 1e6 / (s.ms / 1000);
    // Best of the runs beside the median, as in the data-plane bench: other work on a shared machine only slows.
    const rows = KINDS.map((kind) => {
      const xs = samples.get(kind)!;
      const cpu = xs.every((s) => s.cpuMs !== undefined) ? median(xs.map((s) => (s.cpuMs! * 1e6) / COUNT)) : null;
      return { kind, best: Math.max(...xs.map(fps)), fps: median(xs.map(fps)), mbs: Math.max(...xs.map(mbs)), cpu, ok: xs.every((s) => s.ok) };
    });
    const raw = rows[0]!;
    console.log(`consume: ${COUNT} frames, ${PAYLOAD}-byte payload, ${RUNS} runs in rotating order, plain stream from local probe and stream processes`);
    console.log('reader                      best frames/s   median frames/s   best MB/s   best vs raw   CPU ms per 1M frames (median)   all ok');
    for (const r of rows) {
      console.log(
        `${r.kind.padEnd(26)} ${Math.round(r.best).toLocaleString('en').padStart(14)} ${Math.round(r.fps).toLocaleString('en').padStart(17)} ${r.mbs.toFixed(1).padStart(11)} ${((r.best / raw.best) * 100).toFixed(1).padStart(12)}%   ${(r.cpu === null ? '-' : r.cpu.toFixed(0)).padStart(29)}   ${r.ok}`,
      );
    }
    const of = (kind: Kind) => rows.find((r) => r.kind === kind)!;
    const ratio = (kind: Kind): number => Number((of(kind).best / raw.best).toFixed(3));
    const ratioMedian = (kind: Kind): number => Number((of(kind).fps / raw.fps).toFixed(3));
    console.log(`targets: CLI --raw and library >= ${TARGET * 100}% of the raw socket read (which parses and checks nothing)`);
    const cpuOf = (kind: Kind): number | null => (of(kind).cpu === null ? null : Math.round(of(kind).cpu!));
    console.log(
      JSON.stringify({
        bench: 'consume',
        count: COUNT,
        payload_bytes: PAYLOAD,
        runs: RUNS,
        raw_fps: Math.round(raw.best),
        raw_mbs: Number(raw.mbs.toFixed(1)),
        raw_crc_fps: Math.round(of('raw read + CRC-32 only').best),
        library_fps: Math.round(of('library consume()').best),
        library_batches_fps: Math.round(of('library .batches()').best),
        library_payloads_fps: Math.round(of('library .payloads()').best),
        cli_raw_fps: Math.round(of('CLI consume --raw').best),
        cli_json_fps: Math.round(of('CLI consume (JSON lines)').best),
        raw_crc_vs_raw: ratio('raw read + CRC-32 only'),
        library_vs_raw: ratio('library consume()'),
        library_batches_vs_raw: ratio('library .batches()'),
        library_payloads_vs_raw: ratio('library .payloads()'),
        cli_raw_vs_raw: ratio('CLI consume --raw'),
        cli_json_vs_raw: ratio('CLI consume (JSON lines)'),
        median: {
          raw_fps: Math.round(raw.fps),
          raw_crc_vs_raw: ratioMedian('raw read + CRC-32 only'),
          library_vs_raw: ratioMedian('library consume()'),
          library_batches_vs_raw: ratioMedian('library .batches()'),
          library_payloads_vs_raw: ratioMedian('library .payloads()'),
          cli_raw_vs_raw: ratioMedian('CLI consume --raw'),
          cli_json_vs_raw: ratioMedian('CLI consume (JSON lines)'),
        },
        cpu_ms_per_million_frames: {
          raw: cpuOf('raw socket'),
          raw_crc: cpuOf('raw read + CRC-32 only'),
          library: cpuOf('library consume()'),
          library_batches: cpuOf('library .batches()'),
          library_payloads: cpuOf('library .payloads()'),
        },
        all_ok: rows.every((r) => r.ok),
      }),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

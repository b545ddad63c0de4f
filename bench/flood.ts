/**
 * Fair under floods: a well-behaved client connects, says hello and pings every INTERVAL_MS, first against an idle
 * daemon, then while FLOODERS authenticated connections write batches of 1,000 session.list requests and never
 * read their answers (bench/flood-child.ts, its own process). The daemon (as shipped) starts on RECORDS finished
 * sessions, so a list is a real page of views. Reports the client's connect+hello+ping time (p50/p99/max), its
 * attempts that saw no greeting within 5 s, the daemon's RSS before/peak/after and what the daemon counted.
 * Usage: flood [duration_s] [flooders]. Last line: one JSON object of the figures.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../src/client/index.js';
import { openSessionStore, SESSION_DB_FILE } from '../src/sessions/sqlite-store.js';
import { startServerChild, vmRssBytes } from './ping.js';

const INTERVAL_MS = 200;
const GREETING_TIMEOUT_MS = 5000;
const BATCH = 1000;
const RECORDS = Number(process.env.BENCH_RECORDS ?? 2000);
const MiB = 1024 * 1024;
/** Session ids are [a-z2-7]{10}: base 32 in this alphabet. */
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** Finished sessions with containers, stats and transitions, as the daemon would have left them. */
function seed(dataDir: string, n: number): void {
  const store = openSessionStore(join(dataDir, SESSION_DB_FILE));
  const now = Date.now();
  try {
    for (let i = 0; i < n; i++) {
      const id = [...i.toString(32).padStart(10, '0')].map((d) => ID_ALPHABET[parseInt(d, 32)]).join('');
      const at = now - (n - i) * 1000;
      store.create({ id, mode: 'segmented', count: 1000, payloadBytes: 64, rate: null }, at);
      for (const role of ['probe', 'stream', 'segmentation'] as const) {
        store.putContainer(id, { id: `${id}${role}`.padEnd(64, '0'), name: `edgeecho-${id}-${role}`, role, startedAt: new Date(at).toISOString(), finishedAt: new Date(at + 500).toISOString(), exitCode: 0, stats: { event: 'stats', role, frames: 1000, bytes: 64_000, lost: 0, out_of_order: 0, duration_ms: 480, rate: 2083 } }, at);
      }
      store.transition(id, 'ready', undefined, { network: { id: 'n'.repeat(64), name: `edgeecho-${id}-net`, subnet: '10.213.0.0/28' }, location: { host: '127.0.0.1', port: 40000 + (i % 20000) } }, at + 300);
      store.transition(id, 'completed', undefined, undefined, at + 600);
    }
  } finally {
    store.close();
  }
}

/** utime + stime of a process, in seconds (Linux /proc; clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Attempt {
  ms: number | null;
  error?: string;
}

/** connect + greeting + hello + ping every INTERVAL_MS until `until`. */
async function wellBehaved(port: number, until: number): Promise<Attempt[]> {
  const attempts: Attempt[] = [];
  for (let next = performance.now(); Date.now() < until; next += INTERVAL_MS) {
    const t0 = performance.now();
    let client;
    try {
      client = await connect({ host: '127.0.0.1', port, connectTimeoutMs: GREETING_TIMEOUT_MS, client: 'well-behaved' });
      await client.request('ping', {}, { timeoutMs: GREETING_TIMEOUT_MS });
      attempts.push({ ms: performance.now() - t0 });
    } catch (err) {
      attempts.push({ ms: null, error: (err as { code?: string }).code ?? String(err) });
    } finally {
      await client?.close().catch(() => undefined);
    }
    const wait = next + INTERVAL_MS - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  return attempts;
}

function summary(attempts: Attempt[]): { n: number; failed: number; p50: number; p99: number; max: number } {
  const ok = attempts.flatMap((a) => (a.ms === null ? [] : [a.ms])).sort((a, b) => a - b);
  const q = (p: number): number => (ok.length ? Number(ok[Math.min(ok.length - 1, Math.floor(ok.length * p))]!.toFixed(1)) : NaN);
  return { n: attempts.length, failed: attempts.length - ok.length, p50: q(0.5), p99: q(0.99), max: ok.length ? Number(ok.at(-1)!.toFixed(1)) : NaN };
}

async function daemonCounters(port: number): Promise<Record<string, number>> {
  const client = await connect({ host: '127.0.0.1', port, client: 'flood-bench' });
  try {
    const { text } = await client.request<{ text: string }>('metrics', {});
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^edgeecho_(disconnects_total\{reason="(?:stalled|write_buffer)"\}|read_pauses_total|frames_in_total|nodejs_eventloop_lag_max_seconds|nodejs_eventloop_lag_p99_seconds) (\S+)$/gm)) out[m[1]!] = Number(m[2]);
    return out;
  } finally {
    await client.close();
  }
}

export default async function main(argv: string[]): Promise<void> {
  const durationS = Number(argv[0] ?? 20);
  const flooders = Number(argv[1] ?? 20);
  if (!(durationS > 0 && durationS <= 300 && flooders > 0 && flooders <= 1000)) throw new Error(`usage: flood [duration_s 1..300] [flooders 1..1000], got ${argv.join(' ')}`);
  const dataDir = mkdtempSync(join(tmpdir(), 'edgeecho-flood-'));
  seed(dataDir, RECORDS);
  const daemon = await startServerChild('daemon', { dataDir });
  try {
    const idle = summary(await wellBehaved(daemon.port, Date.now() + durationS * 1000));
    const rssBefore = await daemon.rss();

    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./flood-child.ts', import.meta.url)), String(daemon.port), String(flooders), String(BATCH), String(durationS * 1000)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let childOut = '';
    child.stdout.on('data', (c) => (childOut += String(c)));
    const childDone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, vmRssBytes(daemon.pid))), 100);
    // flood-child compiles with tsx first: give it a moment so the whole window is under flood
    await new Promise((r) => setTimeout(r, 1500));
    const cpuBefore = cpuSeconds(daemon.pid);
    const floodedAttempts = await wellBehaved(daemon.port, Date.now() + (durationS - 2) * 1000);
    const flooded = summary(floodedAttempts);
    const cpuFlood = cpuSeconds(daemon.pid) - cpuBefore;
    if (process.env.BENCH_VERBOSE) console.log(floodedAttempts.map((a) => (a.ms === null ? a.error : a.ms.toFixed(0))).join(' '));
    await childDone;
    clearInterval(sampler);
    const rssAfter = await daemon.rss();
    const flood = JSON.parse(childOut.trim().split('\n').pop() ?? '{}') as Record<string, number>;
    const counted = await daemonCounters(daemon.port);

    const row = (name: string, s: ReturnType<typeof summary>): string =>
      `| ${name.padEnd(8)} | ${String(s.n).padStart(8)} | ${String(s.failed).padStart(6)} | ${String(s.p50).padStart(7)} | ${String(s.p99).padStart(7)} | ${String(s.max).padStart(7)} |`;
    console.log(`well-behaved client: connect + hello + ping every ${INTERVAL_MS} ms, ${durationS} s idle, then under ${flooders} flooders (${BATCH} session.list per batch, never reading); ${RECORDS} records`);
    console.log('| daemon   | attempts | failed | p50 ms  | p99 ms  | max ms  |');
    console.log('|----------|----------|--------|---------|---------|---------|');
    console.log(row('idle', idle));
    console.log(row('flooded', flooded));
    console.log(`flooders: ${flood.hellos} hellos, ${flood.batches} batches (${flood.requests_written} requests written), cut off ${flood.cut_off} times; daemon counted ${JSON.stringify(counted)}`);
    console.log(`daemon CPU while flooded: ${cpuFlood.toFixed(2)} s of ${durationS - 2} s`);
    console.log(`daemon RSS: before ${(rssBefore / MiB).toFixed(1)} MB, peak ${(rssPeak / MiB).toFixed(1)} MB, after ${(rssAfter / MiB).toFixed(1)} MB  (target: flooded p99 < 100 ms, RSS bounded)`);
    console.log(
      JSON.stringify({
        bench: 'flood',
        duration_s: durationS,
        flooders,
        records: RECORDS,
        idle_p50_ms: idle.p50,
        idle_p99_ms: idle.p99,
        idle_failed: idle.failed,
        flooded_p50_ms: flooded.p50,
        flooded_p99_ms: flooded.p99,
        flooded_max_ms: flooded.max,
        flooded_attempts: flooded.n,
        flooded_failed: flooded.failed,
        daemon_cpu_s_flooded: Number(cpuFlood.toFixed(2)),
        flooder_batches: flood.batches,
        flooder_cut_off: flood.cut_off,
        stalled_disconnects: counted['disconnects_total{reason="stalled"}'],
        rss_before_mb: Number((rssBefore / MiB).toFixed(1)),
        rss_peak_mb: Number((rssPeak / MiB).toFixed(1)),
        rss_after_mb: Number((rssAfter / MiB).toFixed(1)),
        ratio_p99_flooded_idle: Number((flooded.p99 / idle.p99).toFixed(2)),
      }),
    );
  } finally {
    await daemon.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

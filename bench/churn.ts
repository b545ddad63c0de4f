/**
 * Session churn on a real daemon process: segmented sessions of count=10,000 created, run and reaped back to
 * back for a while, `concurrency` at a time. Reports sessions per minute, the daemon's RSS after warm-up and at
 * the end (a leak shows as growth; target <= 10 %), and what is left on the engine (target: nothing). Beside it,
 * the baseline measured in the same run: the same network and containers (images, env, limits) created,
 * started, waited for and removed with raw dockerode calls, no daemon, for a fixed number of sessions.
 * `npm run bench -- churn [minutes=5] [concurrency=3]`; minutes may be fractional (0.5 for a quick look).
 */
import Docker from 'dockerode';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Client } from '../src/client/index.js';
import { loadConfig, type Config } from '../src/config.js';
import { runLabel, cleanupDaemons, labelledObjects, startDaemonProcess, TEST_LABEL, waitFor, type DaemonProcess } from '../support/daemon-process.js';
import { listAllSessions } from '../support/session-pages.js';

const LABEL = runLabel('bench-churn');
const COUNT = 10_000;
const DEFAULT_MINUTES = 5;
const DEFAULT_CONCURRENCY = 3;
/** Sessions run before the RSS baseline is taken: module loading, JIT and SQLite caches settle first. */
const WARMUP_PER_WORKER = 3;
const BASELINE_PER_WORKER = 4;
const RSS_SAMPLE_MS = 5_000;
const STEP_TIMEOUT_MS = 120_000;

interface Phase {
  sessions: number;
  failed: number;
  ms: number;
  perMinute: number;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);
const round = (n: number, d = 1): number => Math.round(n * 10 ** d) / 10 ** d;

/** `workers` loops running `one` until `more()` says stop; counts outcomes. */
async function churn(workers: number, more: () => boolean, one: () => Promise<boolean>): Promise<Phase> {
  const started = performance.now();
  let sessions = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (more()) {
        const ok = await one().catch(() => false);
        sessions++;
        if (!ok) failed++;
      }
    }),
  );
  const ms = performance.now() - started;
  return { sessions, failed, ms, perMinute: (sessions * 60_000) / ms };
}

async function daemonSession(client: Client): Promise<boolean> {
  const { id } = await client.request<{ id: string }>('session.create', { mode: 'segmented', count: COUNT }, { timeoutMs: STEP_TIMEOUT_MS });
  const final = await client.request<{ state: string }>('session.watch', { id }, { timeoutMs: STEP_TIMEOUT_MS });
  return final.state === 'completed';
}

/** The same objects a segmented session has, by hand: network, three containers, start, wait, remove. */
async function rawSession(docker: Docker, config: Config, n: number): Promise<boolean> {
  const name = `edgeecho-churnraw-${process.pid}-${n}`;
  const labels = { 'io.edgeecho.managed': 'true', [TEST_LABEL]: LABEL, 'io.edgeecho.session': name };
  const network = await docker.createNetwork({ Name: `${name}-net`, Driver: 'bridge', Labels: labels });
  const containers: Docker.Container[] = [];
  try {
    const roles = [
      { role: 'probe', image: config.imageProbe, limits: config.limitsProbe, env: { PROBE_PORT: '7000', PROBE_ID: name, PROBE_COUNT: String(COUNT), PROBE_PAYLOAD_BYTES: '64', PROBE_RATE: '0' } },
      { role: 'stream', image: config.imageStream, limits: config.limitsStream, env: { PROBE_HOST: 'probe', PROBE_PORT: '7000', STREAM_PORT: '7100', STREAM_MODE: 'segmented', STREAM_GRACE_MS: '10000' } },
      { role: 'segmentation', image: config.imageSegmentation, limits: config.limitsSegmentation, env: { STREAM_HOST: 'stream', STREAM_PORT: '7100' } },
    ];
    containers.push(
      ...(await Promise.all(
        roles.map((r) =>
          docker.createContainer({
            name: `${name}-${r.role}`,
            Image: r.image,
            Env: Object.entries(r.env).map(([k, v]) => `${k}=${v}`),
            Labels: { ...labels, 'io.edgeecho.role': r.role },
            User: '1000:1000',
            ...(r.role === 'stream' ? { ExposedPorts: { '7100/tcp': {} } } : {}),
            HostConfig: {
              Init: true,
              NetworkMode: `${name}-net`,
              ...(r.role === 'stream' ? { PortBindings: { '7100/tcp': [{ HostIp: config.publishHost, HostPort: '' }] } } : {}),
              CapDrop: ['ALL'],
              SecurityOpt: ['no-new-privileges'],
              ReadonlyRootfs: true,
              Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=16m' },
              Memory: r.limits.memoryBytes,
              MemorySwap: r.limits.memoryBytes,
              NanoCpus: r.limits.nanoCpus,
              PidsLimit: r.limits.pids,
            },
            NetworkingConfig: { EndpointsConfig: { [`${name}-net`]: { Aliases: [r.role] } } },
          }),
        ),
      )),
    );
    await Promise.all(containers.map((c) => c.start()));
    const exits = await Promise.all(containers.map((c) => c.wait() as Promise<{ StatusCode: number }>));
    return exits.every((e) => e.StatusCode === 0);
  } finally {
    await Promise.all(containers.map((c) => c.remove({ force: true }).catch(() => undefined)));
    await network.remove().catch(() => undefined);
  }
}

export default async function main(argv: string[]): Promise<void> {
  const minutes = Number(argv[0] ?? DEFAULT_MINUTES);
  const concurrency = Math.max(1, Math.min(16, Math.floor(Number(argv[1] ?? DEFAULT_CONCURRENCY)) || DEFAULT_CONCURRENCY));
  if (!(minutes > 0 && minutes <= 120)) throw new Error(`churn: expected minutes in (0, 120], got "${argv[0]}"`);
  const { config } = loadConfig({ env: process.env });
  const docker = new Docker({ socketPath: config.dockerSocket });
  await docker.ping();

  let daemon: DaemonProcess | undefined;
  let client: Client | undefined;
  try {
    // Baseline first, on an engine no daemon is using.
    let rawN = 0;
    const baselineTotal = BASELINE_PER_WORKER * concurrency;
    await rawSession(docker, config, rawN++);
    const baseline = await churn(concurrency, () => rawN < baselineTotal + 1, () => rawSession(docker, config, rawN++));

    daemon = await startDaemonProcess({ label: LABEL });
    client = await connect({ port: daemon.port });
    const rssLaunch = rssBytes(daemon.pid);
    let warm = 0;
    const warmup = await churn(concurrency, () => warm++ < WARMUP_PER_WORKER * concurrency, () => daemonSession(client!));
    const rssStart = rssBytes(daemon.pid);

    const samples: number[] = [rssStart];
    const pid = daemon.pid;
    const sampler = setInterval(() => samples.push(rssBytes(pid)), RSS_SAMPLE_MS);
    const deadline = Date.now() + minutes * 60_000;
    let timed: Phase;
    try {
      timed = await churn(concurrency, () => Date.now() < deadline, () => daemonSession(client!));
    } finally {
      clearInterval(sampler);
    }

    // The network goes after the record: give the last removals a moment before counting leaks.
    const left = await waitFor('labelled objects to be gone', async () => {
      const l = await labelledObjects(docker, LABEL);
      return l.containers.length + l.networks.length === 0 ? l : undefined;
    }, 20_000).catch(() => labelledObjects(docker, LABEL));
    if (left.containers.length + left.networks.length > 0) {
      // What the daemon said about the leaked sessions, kept for diagnosis.
      const sessions = new Set([...left.containers, ...left.networks].map((name) => /^edgeecho-([a-z0-9]+)-/.exec(name)?.[1] ?? name));
      const file = join(tmpdir(), `edgeecho-churn-${process.pid}.log`);
      writeFileSync(file, daemon.logs.filter((l) => sessions.has(String(l.session ?? ''))).map((l) => JSON.stringify(l)).join('\n') + '\n');
      console.log(`daemon log lines of the leaked sessions: ${file}`);
    }
    const rssEnd = rssBytes(daemon.pid);
    samples.push(rssEnd);
    const records = await listAllSessions<{ id: string; state: string; error?: { message?: string } | null }>(client);
    const failures = records.filter((r) => r.state !== 'completed');
    const notCompleted = failures.length;
    const reasons = [...new Set(failures.map((r) => `${r.state}: ${r.error?.message ?? 'no error recorded'}`))].slice(0, 5);

    const growth = (rssEnd - rssStart) / rssStart;
    const rows: Array<[string, string]> = [
      ['duration (timed phase)', `${round(timed.ms / 60_000, 2)} min, ${concurrency} at a time, segmented count=${COUNT}`],
      ['baseline raw dockerode', `${baseline.sessions} sessions, ${round(baseline.perMinute)} /min, ${baseline.failed} failed`],
      ['daemon warm-up', `${warmup.sessions} sessions, ${round(warmup.perMinute)} /min, ${warmup.failed} failed`],
      ['daemon timed', `${timed.sessions} sessions, ${round(timed.perMinute)} /min, ${timed.failed} failed`],
      ['daemon / baseline', `${round(timed.perMinute / baseline.perMinute, 2)}x sessions per minute`],
      ['daemon RSS launch/start/end/peak', `${mb(rssLaunch)} / ${mb(rssStart)} / ${mb(rssEnd)} / ${mb(Math.max(...samples))} MB`],
      ['RSS growth after warm-up', `${round(growth * 100)} % (target <= 10 %)`],
      ['left on the engine', `${left.containers.length} containers, ${left.networks.length} networks (target 0)`],
      ['records not completed', `${notCompleted} of ${records.length}`],
      ...reasons.map((r): [string, string] => ['  why', r]),
    ];
    const width = Math.max(...rows.map((r) => r[0].length));
    process.stdout.write(`\nchurn: ${minutes} min requested\n`);
    for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(width)}  ${v}\n`);
    process.stdout.write(
      JSON.stringify({
        bench: 'churn',
        minutes: round(timed.ms / 60_000, 2),
        concurrency,
        count: COUNT,
        mode: 'segmented',
        sessions: timed.sessions,
        failed: timed.failed,
        per_minute: round(timed.perMinute),
        baseline_sessions: baseline.sessions,
        baseline_per_minute: round(baseline.perMinute),
        ratio_vs_baseline: round(timed.perMinute / baseline.perMinute, 3),
        rss_start_bytes: rssStart,
        rss_end_bytes: rssEnd,
        rss_peak_bytes: Math.max(...samples),
        rss_growth: round(growth, 4),
        leaked_containers: left.containers.length,
        leaked_networks: left.networks.length,
        records_not_completed: notCompleted,
        failure_reasons: reasons,
      }) + '\n',
    );
  } finally {
    await client?.close().catch(() => undefined);
    // SIGTERM first so the daemon closes its records cleanly; cleanupDaemons SIGKILLs whatever is left.
    await daemon?.kill('SIGTERM');
    await cleanupDaemons(docker, LABEL, [daemon], []);
    if (daemon) rmSync(daemon.dataDir, { recursive: true, force: true });
  }
}

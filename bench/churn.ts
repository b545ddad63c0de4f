/**
 * Session churn on a real daemon process, per runtime: segmented sessions of count=10,000 created, run and reaped
 * back to back for a while, `concurrency` at a time. Reports sessions per minute, the daemon's RSS after warm-up
 * and at the end (a leak shows as growth; target <= 10 %), and what is left in the runtime (target: nothing).
 * Beside it, measured in the same run: for docker, the same network and containers (images, env, limits) created,
 * started, waited for and removed with raw dockerode calls, no daemon; for local, the docker daemon's rate
 * (target: local >= 5x docker).
 * `npm run bench -- churn [minutes=5] [concurrency=3] [runtimes=docker,local[,swarm]]`; minutes may be fractional
 * (swarm: a single-node swarm made for the run and left as found).
 */
import Docker from 'dockerode';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Client } from '../src/client/index.js';
import { loadConfig, type Config } from '../src/config.js';
import { runLabel, cleanupDaemons, labelledObjects, startDaemonProcess, TEST_LABEL, waitFor, type DaemonProcess } from '../support/daemon-process.js';
import { killMentioning, localObjects } from '../support/local-objects.js';
import { listAllSessions } from '../support/session-pages.js';
import { ensureSwarm, labelledSwarmObjects, removeLabelledSwarm } from '../support/swarm-mode.js';
import { LABEL_SESSION } from '../src/runtime/driver.js';

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

type RuntimeName = 'docker' | 'local' | 'swarm';

interface DaemonRun {
  runtime: RuntimeName;
  warmup: Phase;
  timed: Phase;
  rssLaunch: number;
  rssStart: number;
  rssEnd: number;
  rssPeak: number;
  /** What the runtime still holds of the daemon's sessions: containers and networks, or records and processes. */
  left: string[];
  notCompleted: number;
  records: number;
  reasons: string[];
}

/** One runtime's daemon: warm-up, then `minutes` of churn with RSS sampled, then leaks and records counted. */
async function daemonRun(runtime: RuntimeName, docker: Docker | null, minutes: number, concurrency: number, swarmConstraint?: string): Promise<DaemonRun> {
  let daemon: DaemonProcess | undefined;
  let client: Client | undefined;
  try {
    const env = { EDGEECHO_RUNTIME: runtime, ...(runtime === 'swarm' && swarmConstraint ? { EDGEECHO_SWARM_CONSTRAINTS: swarmConstraint } : {}) };
    daemon = await startDaemonProcess({ label: LABEL, env });
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
    const dataDir = daemon.dataDir;
    const leftNow = async (): Promise<string[]> => {
      if (runtime === 'local') return localObjects(dataDir);
      if (runtime === 'swarm') return labelledSwarmObjects(docker!, TEST_LABEL, LABEL, LABEL_SESSION);
      const l = await labelledObjects(docker!, LABEL);
      return [...l.containers, ...l.networks];
    };
    // The network goes after the record: give the last removals a moment before counting leaks.
    const left = await waitFor('nothing to be left', async () => ((await leftNow()).length === 0 ? [] : undefined), 20_000).catch(leftNow);
    if (left.length > 0) {
      // What the daemon said about the leaked sessions, kept for diagnosis.
      const sessions = new Set(left.map((name) => /^edgeecho-([a-z0-9]+)-/.exec(name)?.[1] ?? name));
      const file = join(tmpdir(), `edgeecho-churn-${runtime}-${process.pid}.log`);
      writeFileSync(file, daemon.logs.filter((l) => sessions.has(String(l.session ?? ''))).map((l) => JSON.stringify(l)).join('\n') + '\n');
      console.log(`daemon log lines of the leaked sessions: ${file}`);
    }
    const rssEnd = rssBytes(daemon.pid);
    samples.push(rssEnd);
    const records = await listAllSessions<{ id: string; state: string; error?: { message?: string } | null }>(client);
    const failures = records.filter((r) => r.state !== 'completed');
    const reasons = [...new Set(failures.map((r) => `${r.state}: ${r.error?.message ?? 'no error recorded'}`))].slice(0, 5);
    return { runtime, warmup, timed, rssLaunch, rssStart, rssEnd, rssPeak: Math.max(...samples), left, notCompleted: failures.length, records: records.length, reasons };
  } finally {
    await client?.close().catch(() => undefined);
    // SIGTERM first so the daemon closes its records cleanly; then whatever is left goes.
    await daemon?.kill('SIGTERM');
    if (runtime === 'swarm') await removeLabelledSwarm(docker!, TEST_LABEL, LABEL);
    if (runtime !== 'local') await cleanupDaemons(docker, LABEL, [daemon], []);
    if (daemon) {
      killMentioning(join(daemon.dataDir, 'local'));
      rmSync(daemon.dataDir, { recursive: true, force: true });
    }
  }
}

export default async function main(argv: string[]): Promise<void> {
  const minutes = Number(argv[0] ?? DEFAULT_MINUTES);
  const concurrency = Math.max(1, Math.min(16, Math.floor(Number(argv[1] ?? DEFAULT_CONCURRENCY)) || DEFAULT_CONCURRENCY));
  if (!(minutes > 0 && minutes <= 120)) throw new Error(`churn: expected minutes in (0, 120], got "${argv[0]}"`);
  const runtimes = (argv[2] ?? 'docker,local').split(',') as RuntimeName[];
  if (!runtimes.length || runtimes.some((r) => r !== 'docker' && r !== 'local' && r !== 'swarm')) throw new Error(`churn: expected runtimes among docker,local,swarm, got "${argv[2]}"`);
  const { config } = loadConfig({ env: process.env });
  const docker = runtimes.some((r) => r !== 'local') ? new Docker({ socketPath: config.dockerSocket }) : null;
  await docker?.ping();
  const swarm = runtimes.includes('swarm') ? await ensureSwarm(docker!) : null;

  let baseline: Phase | null = null;
  if (docker) {
    // Baseline first, on an engine no daemon is using.
    let rawN = 0;
    const baselineTotal = BASELINE_PER_WORKER * concurrency;
    await rawSession(docker, config, rawN++);
    baseline = await churn(concurrency, () => rawN < baselineTotal + 1, () => rawSession(docker, config, rawN++));
  }
  const runs: DaemonRun[] = [];
  for (const runtime of runtimes) runs.push(await daemonRun(runtime, docker, minutes, concurrency, swarm?.constraint));

  const dockerRun = runs.find((r) => r.runtime === 'docker');
  const rows: Array<[string, string]> = [['duration (timed phase)', `${minutes} min per runtime, ${concurrency} at a time, segmented count=${COUNT}`]];
  if (baseline) rows.push(['baseline raw dockerode', `${baseline.sessions} sessions, ${round(baseline.perMinute)} /min, ${baseline.failed} failed`]);
  for (const r of runs) {
    const growth = (r.rssEnd - r.rssStart) / r.rssStart;
    rows.push(
      [`${r.runtime}: daemon warm-up`, `${r.warmup.sessions} sessions, ${round(r.warmup.perMinute)} /min, ${r.warmup.failed} failed`],
      [`${r.runtime}: daemon timed`, `${r.timed.sessions} sessions, ${round(r.timed.perMinute)} /min, ${r.timed.failed} failed`],
      ...(r.runtime === 'docker' && baseline ? [[`docker: daemon / raw dockerode`, `${round(r.timed.perMinute / baseline.perMinute, 2)}x sessions per minute`] as [string, string]] : []),
      ...(r.runtime === 'local' && dockerRun ? [[`local / docker daemon`, `${round(r.timed.perMinute / dockerRun.timed.perMinute, 2)}x sessions per minute (target >= 5x)`] as [string, string]] : []),
      ...(r.runtime === 'swarm' && dockerRun ? [[`swarm / docker daemon`, `${round(r.timed.perMinute / dockerRun.timed.perMinute, 2)}x sessions per minute (the cost of the cluster layer)`] as [string, string]] : []),
      [`${r.runtime}: RSS launch/start/end/peak`, `${mb(r.rssLaunch)} / ${mb(r.rssStart)} / ${mb(r.rssEnd)} / ${mb(r.rssPeak)} MB`],
      [`${r.runtime}: RSS growth after warm-up`, `${round(growth * 100)} % (target <= 10 %)`],
      [`${r.runtime}: left in the runtime`, `${r.left.length} objects (target 0)${r.left.length ? ': ' + r.left.slice(0, 5).join(', ') : ''}`],
      [`${r.runtime}: records not completed`, `${r.notCompleted} of ${r.records}`],
      ...r.reasons.map((why): [string, string] => ['  why', why]),
    );
  }
  const width = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(`\nchurn: ${minutes} min requested per runtime\n`);
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(width)}  ${v}\n`);
  const figures: Record<string, unknown> = { bench: 'churn', minutes, concurrency, count: COUNT, mode: 'segmented' };
  if (baseline) Object.assign(figures, { baseline_sessions: baseline.sessions, baseline_per_minute: round(baseline.perMinute) });
  for (const r of runs) {
    figures[r.runtime] = {
      sessions: r.timed.sessions,
      failed: r.timed.failed,
      per_minute: round(r.timed.perMinute),
      rss_start_bytes: r.rssStart,
      rss_end_bytes: r.rssEnd,
      rss_peak_bytes: r.rssPeak,
      rss_growth: round((r.rssEnd - r.rssStart) / r.rssStart, 4),
      left: r.left.length,
      records_not_completed: r.notCompleted,
      failure_reasons: r.reasons,
    };
  }
  if (dockerRun && baseline) figures.docker_ratio_vs_raw = round(dockerRun.timed.perMinute / baseline.perMinute, 3);
  const localRun = runs.find((r) => r.runtime === 'local');
  if (localRun && dockerRun) figures.local_ratio_vs_docker = round(localRun.timed.perMinute / dockerRun.timed.perMinute, 3);
  const swarmRun = runs.find((r) => r.runtime === 'swarm');
  if (swarmRun && dockerRun) figures.swarm_ratio_vs_docker = round(swarmRun.timed.perMinute / dockerRun.timed.perMinute, 3);
  process.stdout.write(JSON.stringify(figures) + '\n');
}

/**
 * Warm pools on real daemon processes: time to ready (client side, request to result) of creates claiming a
 * parked session, in bursts of `burst` concurrent creates from a full pool of `burst` (refilled between bursts)
 * and one at a time, beside cold creates (a daemon without pools) and raw parallel dockerode sessions measured in
 * the same run. Also the burst's wall time, refill throughput (parked sessions per minute, filling both pools from
 * empty) and CPU while the pools sit idle (the daemon process, and every parked emulator together).
 * `npm run bench -- pool [bursts=5] [burst=10] [singles=50]`. Targets: hit p50 < 50 ms, p99 < 150 ms; a burst of 10 from a
 * pool of 10 all ready within 250 ms; idle CPU ~0.
 */
import Docker from 'dockerode';
import { readFileSync } from 'node:fs';
import { connect, type Client } from '../src/client/index.js';
import { loadConfig } from '../src/config.js';
import type { SessionMode } from '../src/workflow/session-spec.js';
import { cleanupDaemons, runLabel, startDaemonProcess, TEST_LABEL, waitFor, type DaemonProcess } from '../support/daemon-process.js';
import { listAllSessions } from '../support/session-pages.js';
import { rawSessions } from '../support/raw-session.js';

const LABEL = runLabel('bench-pool');
const MODES: readonly SessionMode[] = ['plain', 'segmented'];
const COUNT = 100;
const IDLE_SAMPLE_MS = 10_000;
const FILL_TIMEOUT_MS = 300_000;
const COLD = 10;
/** Room for two full pools and the bursts' sessions whatever the host: admission is not what is measured. */
const ROOMY = { EDGEECHO_CAPACITY_CPUS: '4096', EDGEECHO_MAX_SESSIONS: '1000', EDGEECHO_CAPACITY_MEMORY: '1024g', EDGEECHO_MIN_FREE_MEMORY: '0', EDGEECHO_PLAIN_GRACE_MS: '200' };

interface Stats {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => Math.round(s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!);
  return { n: s.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: Math.round(s.at(-1)!) };
}

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function timedCreate(client: Client, mode: SessionMode): Promise<{ ms: number; pool: unknown }> {
  const t0 = performance.now();
  const call = client.call('session.create', { mode, count: COUNT }, { timeoutMs: 120_000 });
  let pool: unknown;
  for await (const f of call.status) if (f.step === 'session' && f.state === 'started') pool = (f.details as { pool?: unknown } | undefined)?.pool;
  await call.result;
  return { ms: performance.now() - t0, pool };
}

type Pools = Record<SessionMode, { size: number; parked: number; refilling: number }>;

/** Both pools full and no session live: the next burst starts on a quiet daemon. */
async function quiet(client: Client): Promise<void> {
  await waitFor(
    'pools full and no live session',
    async () => {
      const pool = (await client.request<{ pool: Pools }>('resources', {})).pool;
      const sessions = await listAllSessions<{ id: string; state: string }>(client);
      const live = sessions.filter((s) => ['creating', 'ready', 'stopping'].includes(s.state)).length;
      return MODES.every((m) => pool[m].parked === pool[m].size) && live === 0 ? true : undefined;
    },
    FILL_TIMEOUT_MS,
    200,
  );
  // Teardowns and parks just ended; let the engine settle before measuring.
  await new Promise((r) => setTimeout(r, 1000));
}

/** CPU over IDLE_SAMPLE_MS of the daemon process and of every container of this run (the parked emulators), in % of one core. */
async function idleCpu(docker: Docker, pid: number): Promise<{ daemon: number; parked: number; containers: number }> {
  const containers = await docker.listContainers({ filters: { label: [`${TEST_LABEL}=${LABEL}`] } });
  const usage = async (): Promise<number> => {
    const all = await Promise.all(containers.map((c) => docker.getContainer(c.Id).stats({ stream: false }) as Promise<Docker.ContainerStats>));
    return all.reduce((sum, s) => sum + (s.cpu_stats?.cpu_usage?.total_usage ?? 0), 0);
  };
  const ticks0 = cpuTicks(pid);
  const usage0 = await usage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, IDLE_SAMPLE_MS));
  const ms = performance.now() - t0;
  const ticks = cpuTicks(pid) - ticks0;
  const ns = (await usage()) - usage0;
  return { daemon: Math.round(((ticks * 10) / ms) * 10_000) / 100, parked: Math.round((ns / 1e6 / ms) * 10_000) / 100, containers: containers.length };
}

export default async function main(argv: string[]): Promise<void> {
  const bursts = Math.max(1, Number(argv[0] ?? 5) || 5);
  const burst = Math.max(1, Number(argv[1] ?? 10) || 10);
  const singles = Math.max(1, Number(argv[2] ?? 50) || 50);
  const { config } = loadConfig({ env: process.env });
  const docker = new Docker({ socketPath: config.dockerSocket });
  const daemons: DaemonProcess[] = [];
  const dirs: string[] = [];
  const clients: Client[] = [];
  const start = async (env: Record<string, string>): Promise<{ daemon: DaemonProcess; client: Client }> => {
    const daemon = await startDaemonProcess({ label: LABEL, env: { ...ROOMY, ...env } });
    daemons.push(daemon);
    dirs.push(daemon.dataDir);
    const client = await connect({ port: daemon.port });
    clients.push(client);
    return { daemon, client };
  };
  const rows: Record<string, Stats> = {};
  const burstWall: Record<string, number[]> = {};
  const figures: Record<string, unknown> = { bench: 'pool', bursts, burst, singles, count: COUNT };
  try {
    // Baselines first, on a daemon without pools (its images are built here, so the pool daemon finds them).
    const cold = await start({});
    // The same idle measure without pools: what the daemon costs anyway (resource sampling, the sweep).
    figures.idle_cpu_percent_no_pool = await idleCpu(docker, cold.daemon.pid);
    const raw = await rawSessions(docker, config, { [TEST_LABEL]: LABEL });
    const made = new Set<string>();
    for (const mode of MODES) {
      const c: number[] = [];
      const r: number[] = [];
      for (let i = -1; i < COLD; i++) {
        const ours = await timedCreate(cold.client, mode);
        const theirs = await raw(mode, made);
        if (i >= 0) c.push(ours.ms), r.push(theirs.ms);
      }
      rows[`${mode} cold create`] = stats(c);
      rows[`${mode} raw dockerode`] = stats(r);
      const wall = performance.now();
      const all = await Promise.all(Array.from({ length: burst }, () => timedCreate(cold.client, mode)));
      burstWall[`${mode} cold`] = [Math.round(performance.now() - wall)];
      rows[`${mode} cold, burst of ${burst}`] = stats(all.map((x) => x.ms));
    }
    await cold.daemon.kill('SIGTERM');

    const warm = await start({ EDGEECHO_POOL_PLAIN: String(burst), EDGEECHO_POOL_SEGMENTED: String(burst) });
    const fillStart = performance.now();
    await quiet(warm.client);
    const fillMs = performance.now() - fillStart - 1000;
    figures.refill_per_minute = Math.round(((2 * burst) / fillMs) * 60_000);
    figures.idle_cpu_percent = await idleCpu(docker, warm.daemon.pid);

    for (const mode of MODES) {
      const hits: number[] = [];
      burstWall[`${mode} pool`] = [];
      let misses = 0;
      for (let b = 0; b < bursts; b++) {
        await quiet(warm.client);
        const wall = performance.now();
        const all = await Promise.all(Array.from({ length: burst }, () => timedCreate(warm.client, mode)));
        burstWall[`${mode} pool`]!.push(Math.round(performance.now() - wall));
        for (const x of all) if (x.pool === 'hit') hits.push(x.ms);
        misses += all.filter((x) => x.pool !== 'hit').length;
      }
      rows[`${mode} pool hit, bursts of ${burst}`] = stats(hits);
      figures[`${mode}_burst_misses`] = misses;
      const one: number[] = [];
      for (let i = 0; i < singles; i++) {
        await quiet(warm.client);
        const claim = await timedCreate(warm.client, mode);
        if (claim.pool === 'hit') one.push(claim.ms);
      }
      rows[`${mode} pool hit, one at a time`] = stats(one);
    }
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    await cleanupDaemons(docker, LABEL, daemons, dirs);
  }

  console.log(`time to ready, client side (ms); ${bursts} bursts of ${burst} creates, count=${COUNT}`);
  console.log(`${'case'.padEnd(36)}${['n', 'p50', 'p95', 'p99', 'max'].map((h) => h.padStart(7)).join('')}`);
  for (const [name, s] of Object.entries(rows)) console.log(`${name.padEnd(36)}${[s.n, s.p50, s.p95, s.p99, s.max].map((v) => String(v).padStart(7)).join('')}`);
  for (const [name, walls] of Object.entries(burstWall)) console.log(`burst of ${burst}, ${name}: all ready in ${walls.join(', ')} ms (target for pool: <= 250)`);
  const idle = figures.idle_cpu_percent as { daemon: number; parked: number; containers: number };
  const bare = figures.idle_cpu_percent_no_pool as { daemon: number };
  console.log(`refill: ${figures.refill_per_minute} parked sessions/min; idle pools: daemon ${idle.daemon}% CPU (${bare.daemon}% without pools), ${idle.containers} parked containers ${idle.parked}% CPU together`);
  const ratio = (a: string, b: string): number => Math.round((rows[a]!.p50 / rows[b]!.p50) * 100) / 100;
  for (const mode of MODES) {
    figures[mode] = {
      hit_burst: rows[`${mode} pool hit, bursts of ${burst}`],
      hit_single: rows[`${mode} pool hit, one at a time`],
      cold: rows[`${mode} cold create`],
      cold_burst: rows[`${mode} cold, burst of ${burst}`],
      raw: rows[`${mode} raw dockerode`],
      burst_wall_ms: burstWall[`${mode} pool`],
      cold_burst_wall_ms: burstWall[`${mode} cold`],
      cold_over_hit_p50: ratio(`${mode} cold create`, `${mode} pool hit, one at a time`),
      raw_over_hit_p50: ratio(`${mode} raw dockerode`, `${mode} pool hit, one at a time`),
    };
  }
  console.log(JSON.stringify(figures));
}

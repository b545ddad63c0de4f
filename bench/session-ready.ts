/**
 * Time to ready of plain and segmented sessions (the session lifecycle's create: workflow engine and the runtime's
 * driver), per runtime, beside a lower bound measured in the same run. Docker: the same network and hardened
 * containers created and started with raw parallel dockerode calls, waiting for the same ready lines and the
 * published port. Local: the same three emulator bundles spawned at once as bare node processes on the same kind of
 * ports, waiting for their ready lines. Every local session starts fresh processes: these are cold starts.
 * Swarm: the swarm runtime's sessions (services on a single-node swarm, made for the run and left as found) beside
 * the same raw dockerode bound, so its ratio is the cost of the cluster layer.
 * `npm run bench -- session-ready [iterations=3] [runtimes=docker,local[,swarm]]`. Targets: ready <= 1.1x the raw bound;
 * local segmented p50 < 150 ms; swarm <= 2x the Docker runtime.
 */
import Docker from 'dockerode';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig, type Config } from '../src/config.js';
import { rawSessions, removeSession } from '../support/raw-session.js';
import { killMentioning } from '../support/local-objects.js';
import { silentLogger } from '../src/log.js';
import { DockerDriver } from '../src/runtime/docker/driver.js';
import { ensureEmulatorImages } from '../src/runtime/docker/images.js';
import type { Role } from '../src/runtime/driver.js';
import { localLayout } from '../src/runtime/local/layout.js';
import { localRuntime } from '../src/runtime/local/local-runtime.js';
import { PortAllocator } from '../src/runtime/local/ports.js';
import { SwarmDriver } from '../src/runtime/swarm/driver.js';
import { ensureSwarm, removeLabelledSwarm } from '../support/swarm-mode.js';
import { SessionBus } from '../src/sessions/events.js';
import { SessionLifecycle } from '../src/sessions/lifecycle.js';
import { openSessionStore } from '../src/sessions/sqlite-store.js';
import { rolesOf } from '../src/workflow/session-spec.js';

const LABELS = { 'io.edgeecho.test': 'bench' };
const MAX_ITERATIONS = 10;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Row {
  runtime: string;
  mode: string;
  ours_ms: number;
  raw_ms: number;
  ratio: number;
  ours: number[];
  raw: number[];
}

type Timed = (mode: 'plain' | 'segmented') => Promise<{ ms: number; id: string }>;

/** One warm-up each, then alternating raw and ours so drift hits both alike; medians per mode. */
async function measure(runtime: string, iterations: number, raw: Timed, ours: Timed, cleanup: (id: string) => Promise<void>): Promise<Row[]> {
  const rows: Row[] = [];
  for (const mode of ['plain', 'segmented'] as const) {
    const o: number[] = [];
    const r: number[] = [];
    for (let i = -1; i < iterations; i++) {
      for (const [kind, fn] of [['raw', raw], ['ours', ours]] as const) {
        const { ms, id } = await fn(mode);
        await cleanup(id);
        if (i >= 0) (kind === 'raw' ? r : o).push(ms);
      }
    }
    rows.push({ runtime, mode, ours_ms: Math.round(median(o)), raw_ms: Math.round(median(r)), ratio: Math.round((median(o) / median(r)) * 100) / 100, ours: o.map(Math.round), raw: r.map(Math.round) });
  }
  return rows;
}

export default async function main(argv: string[]): Promise<void> {
  const iterations = Math.min(MAX_ITERATIONS, Math.max(1, Number(argv[0] ?? 3) || 3));
  const runtimes = (argv[1] ?? 'docker,local').split(',');
  const { config } = loadConfig({ env: { ...process.env, EDGEECHO_PLAIN_GRACE_MS: '1000' } });
  const rows: Row[] = [];
  if (runtimes.includes('docker')) rows.push(...(await dockerRows(config, iterations)));
  if (runtimes.includes('local')) rows.push(...(await localRows(config, iterations)));
  if (runtimes.includes('swarm')) rows.push(...(await swarmRows(config, iterations)));
  console.log(`session ready time, median of ${iterations} (ms)`);
  console.log('runtime  mode        session.create   raw parallel   ratio (target <= 1.10)');
  for (const row of rows) console.log(`${row.runtime.padEnd(9)}${row.mode.padEnd(12)}${String(row.ours_ms).padStart(14)}${String(row.raw_ms).padStart(15)}${row.ratio.toFixed(2).padStart(8)}`);
  const local = rows.find((r) => r.runtime === 'local' && r.mode === 'segmented');
  const docker = rows.find((r) => r.runtime === 'docker' && r.mode === 'segmented');
  if (local) console.log(`local segmented p50 ${local.ours_ms} ms (target < 150 ms cold)${docker ? `; docker ${docker.ours_ms} ms (${(docker.ours_ms / local.ours_ms).toFixed(1)}x slower)` : ''}`);
  const swarmVsDocker: Record<string, number> = {};
  for (const mode of ['plain', 'segmented']) {
    const s = rows.find((r) => r.runtime === 'swarm' && r.mode === mode);
    const d = rows.find((r) => r.runtime === 'docker' && r.mode === mode);
    if (s && d) swarmVsDocker[mode] = Math.round((s.ours_ms / d.ours_ms) * 100) / 100;
  }
  if (Object.keys(swarmVsDocker).length) console.log(`swarm / docker runtime: plain ${swarmVsDocker.plain ?? '-'}x, segmented ${swarmVsDocker.segmented ?? '-'}x (target <= 2x)`);
  console.log(
    JSON.stringify({
      bench: 'session-ready',
      iterations,
      results: rows,
      ...(local && docker ? { local_vs_docker_segmented: Math.round((local.ours_ms / docker.ours_ms) * 1000) / 1000 } : {}),
      ...(Object.keys(swarmVsDocker).length ? { swarm_vs_docker: swarmVsDocker } : {}),
    }),
  );
}

/** The local runtime: lifecycle over the LocalDriver beside bare parallel node processes. */
async function localRows(config: Config, iterations: number): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgeecho-bench-ready-'));
  const runtime = localRuntime({ dataDir, publishHost: config.publishHost }, silentLogger);
  try {
    await runtime.prepare({});
    const layout = localLayout(dataDir);
    const admission = { admit: () => undefined, release: () => undefined, adopt: () => undefined };
    const lifecycle = new SessionLifecycle({ driver: runtime.driver, store: openSessionStore(':memory:'), bus: new SessionBus(), admission, config, log: silentLogger, labels: LABELS });
    const signal = new AbortController().signal;
    // The same allocation the local runtime does, so the bound pays what the runtime pays.
    const ports = new PortAllocator();
    const raw: Timed = async (mode) => {
      const t0 = performance.now();
      const probePort = await ports.allocate(new Set());
      const streamPort = await ports.allocate(new Set([probePort]));
      const env: Record<Role, Record<string, string>> = {
        probe: { PROBE_PORT: String(probePort), PROBE_ID: 'raw', PROBE_COUNT: '10', PROBE_PAYLOAD_BYTES: '64', PROBE_RATE: '0', EMULATOR_LISTEN_HOST: '127.0.0.1' },
        stream: { PROBE_HOST: '127.0.0.1', PROBE_PORT: String(probePort), STREAM_PORT: String(streamPort), STREAM_MODE: mode, STREAM_GRACE_MS: '1000', EMULATOR_LISTEN_HOST: config.publishHost },
        segmentation: { STREAM_HOST: '127.0.0.1', STREAM_PORT: String(streamPort) },
      };
      const children = rolesOf(mode).map((role) => spawn(process.execPath, [layout.script(role)], { env: { PATH: process.env.PATH, ...env[role] }, stdio: ['ignore', 'pipe', 'ignore'] }));
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve, reject) => {
              const lines = createInterface({ input: child.stdout! });
              lines.on('line', (line) => line.includes('"event":"ready"') && resolve());
              child.once('exit', (code) => reject(new Error(`raw local ${mode}: a role exited ${code} before ready`)));
            }),
        ),
      );
      const ms = performance.now() - t0;
      for (const child of children) child.kill('SIGKILL');
      return { ms, id: 'raw' };
    };
    const ours: Timed = async (mode) => {
      const t0 = performance.now();
      const result = await lifecycle.create({ mode, count: 10 }, { signal, status: () => undefined });
      return { ms: performance.now() - t0, id: result.id };
    };
    return await measure('local', iterations, raw, ours, async (id) => {
      if (id !== 'raw') await lifecycle.stop(id, { status: () => undefined });
    });
  } finally {
    killMentioning(dataDir);
    runtime.close?.();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The Docker runtime: lifecycle over the DockerDriver beside raw parallel dockerode calls (support/raw-session.ts). */
async function dockerRows(config: Config, iterations: number): Promise<Row[]> {
  const docker = new Docker({ socketPath: config.dockerSocket });
  await ensureEmulatorImages(docker, { config, log: silentLogger });
  const driver = new DockerDriver({ docker, subnetPool: config.subnetPool, subnetPrefix: config.subnetPrefix });
  const startOrder = (process.env.BENCH_START_ORDER ?? 'parallel') as 'parallel' | 'after-start' | 'after-ready';
  // Admission is not what is measured: it admits everything.
  const admission = { admit: () => undefined, release: () => undefined, adopt: () => undefined };
  const lifecycle = new SessionLifecycle({ driver, store: openSessionStore(':memory:'), bus: new SessionBus(), admission, config, log: silentLogger, labels: LABELS, startOrder });
  const signal = new AbortController().signal;
  const rawSession = await rawSessions(docker, config, LABELS);
  const made = new Set<string>();
  const ours: Timed = async (mode) => {
    const t0 = performance.now();
    const result = await lifecycle.create({ mode, count: 10 }, { signal, status: (f) => void (typeof f.session === 'string' && made.add(f.session)) });
    return { ms: performance.now() - t0, id: result.id };
  };
  try {
    return await measure('docker', iterations, (mode) => rawSession(mode, made), ours, (id) => removeSession(docker, id));
  } finally {
    for (const id of made) await removeSession(docker, id);
  }
}

/** The swarm runtime on a single-node swarm, beside the raw dockerode bound of the Docker engine under it. */
async function swarmRows(config: Config, iterations: number): Promise<Row[]> {
  const docker = new Docker({ socketPath: config.dockerSocket });
  await ensureEmulatorImages(docker, { config, log: silentLogger });
  const swarm = await ensureSwarm(docker);
  const driver = new SwarmDriver({
    docker,
    subnetPool: config.subnetPool,
    subnetPrefix: config.subnetPrefix,
    endpointMode: 'dnsrr',
    stopGraceS: config.stopTimeoutS,
    constraints: [{ ...swarm.placement, equal: true }],
    cpuRatio: config.swarmCpuRatio,
    pollMs: config.swarmPollMs,
  });
  const admission = { admit: () => undefined, release: () => undefined, adopt: () => undefined };
  const lifecycle = new SessionLifecycle({ driver, store: openSessionStore(':memory:'), bus: new SessionBus(), admission, config, log: silentLogger, labels: LABELS });
  const signal = new AbortController().signal;
  const rawSession = await rawSessions(docker, config, LABELS);
  const made = new Set<string>();
  const ours: Timed = async (mode) => {
    const t0 = performance.now();
    const result = await lifecycle.create({ mode, count: 10 }, { signal, status: (f) => void (typeof f.session === 'string' && made.add(f.session)) });
    return { ms: performance.now() - t0, id: result.id };
  };
  try {
    // Removed behind the driver's back: its placement is given back by hand.
    const cleanup = async (id: string): Promise<void> => {
      await removeSession(docker, id);
      driver.unplace(id);
    };
    return await measure('swarm', iterations, (mode) => rawSession(mode, made), ours, cleanup);
  } finally {
    for (const id of made) await removeSession(docker, id);
    await removeLabelledSwarm(docker, 'io.edgeecho.test', 'bench');
    driver.close();
  }
}

/**
 * Time to ready of plain and segmented sessions (the session lifecycle's create: workflow engine and DockerDriver)
 * beside a lower bound measured in the same run: the same network and hardened containers created and started
 * with raw parallel dockerode calls, waiting for the same ready lines and the published port.
 * `npm run bench -- session-ready [iterations=3]`. Target: ready <= 1.1x the raw bound.
 */
import Docker from 'dockerode';
import { loadConfig } from '../src/config.js';
import { silentLogger } from '../src/log.js';
import { DockerDriver, TMPFS_TMP, CONTAINER_USER } from '../src/runtime/docker/driver.js';
import { ensureEmulatorImages } from '../src/runtime/docker/images.js';
import { ReadyWatch } from '../src/runtime/docker/readiness.js';
import { LABEL_MANAGED, LABEL_SESSION, type Role } from '../src/runtime/driver.js';
import { SessionBus } from '../src/sessions/events.js';
import { SubnetPool } from '../src/runtime/docker/subnets.js';
import { SessionLifecycle } from '../src/sessions/lifecycle.js';
import { openSessionStore } from '../src/sessions/sqlite-store.js';
import { newSessionId } from '../src/sessions/session-id.js';
import { PROBE_PORT, STREAM_PORT } from '../src/workflow/session-workflows.js';
import { rolesOf } from '../src/workflow/session-spec.js';

const LABELS = { 'io.edgeecho.test': 'bench' };
const MAX_ITERATIONS = 10;

async function removeSession(docker: Docker, id: string): Promise<void> {
  const filters = { label: [`${LABEL_SESSION}=${id}`] };
  await Promise.all((await docker.listContainers({ all: true, filters })).map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
  for (const n of await docker.listNetworks({ filters })) await docker.getNetwork(n.Id).remove().catch(() => {});
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export default async function main(argv: string[]): Promise<void> {
  const iterations = Math.min(MAX_ITERATIONS, Math.max(1, Number(argv[0] ?? 3) || 3));
  const { config } = loadConfig({ env: { ...process.env, EDGEECHO_PLAIN_GRACE_MS: '1000' } });
  const docker = new Docker({ socketPath: config.dockerSocket });
  await ensureEmulatorImages(docker, { config, log: silentLogger });
  const driver = new DockerDriver({ docker, subnetPool: config.subnetPool, subnetPrefix: config.subnetPrefix });
  const startOrder = (process.env.BENCH_START_ORDER ?? 'parallel') as 'parallel' | 'after-start' | 'after-ready';
  // Admission is not what is measured: it admits everything.
  const admission = { admit: () => undefined, release: () => undefined, adopt: () => undefined };
  const lifecycle = new SessionLifecycle({ driver, store: openSessionStore(':memory:'), bus: new SessionBus(), admission, config, log: silentLogger, labels: LABELS, startOrder });
  const signal = new AbortController().signal;

  const images: Record<Role, string> = { probe: config.imageProbe, stream: config.imageStream, segmentation: config.imageSegmentation };
  const limits = { probe: config.limitsProbe, stream: config.limitsStream, segmentation: config.limitsSegmentation };
  const env = (id: string, role: Role, mode: string): string[] =>
    role === 'probe'
      ? [`PROBE_PORT=${PROBE_PORT}`, `PROBE_ID=${id}`, 'PROBE_COUNT=10', 'PROBE_PAYLOAD_BYTES=64', 'PROBE_RATE=0']
      : role === 'stream'
        ? ['PROBE_HOST=probe', `PROBE_PORT=${PROBE_PORT}`, `STREAM_PORT=${STREAM_PORT}`, `STREAM_MODE=${mode}`, 'STREAM_GRACE_MS=1000']
        : ['STREAM_HOST=stream', `STREAM_PORT=${STREAM_PORT}`];
  // The raw runs cut their subnets from a pool of their own, past what existing networks hold.
  const rawSubnets = new SubnetPool('10.215.0.0/16', 28);
  for (const n of await docker.listNetworks()) for (const c of n.IPAM?.Config ?? []) if (c.Subnet) rawSubnets.markUsed(c.Subnet);
  const made = new Set<string>();

  /** The lower bound: everything in parallel, no engine, no records, no status frames. */
  async function raw(mode: 'plain' | 'segmented'): Promise<{ ms: number; id: string }> {
    const id = newSessionId();
    const labels = { ...LABELS, [LABEL_MANAGED]: 'true', [LABEL_SESSION]: id };
    const t0 = performance.now();
    made.add(id);
    const subnet = rawSubnets.allocate();
    const net = await docker.createNetwork({ Name: `edgeecho-${id}-net`, Labels: labels, IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] } });
    const roles = rolesOf(mode);
    const containers = await Promise.all(
      roles.map((role) =>
        docker.createContainer({
          name: `edgeecho-${id}-${role}`,
          Image: images[role],
          Env: env(id, role, mode),
          Labels: { ...labels, 'io.edgeecho.role': role },
          User: CONTAINER_USER,
          ExposedPorts: role === 'stream' ? { [`${STREAM_PORT}/tcp`]: {} } : {},
          HostConfig: {
            Init: true,
            NetworkMode: net.id,
            PortBindings: role === 'stream' ? { [`${STREAM_PORT}/tcp`]: [{ HostIp: config.publishHost, HostPort: '' }] } : {},
            CapDrop: ['ALL'],
            SecurityOpt: ['no-new-privileges'],
            ReadonlyRootfs: true,
            Tmpfs: { '/tmp': TMPFS_TMP },
            Memory: limits[role].memoryBytes,
            NanoCpus: limits[role].nanoCpus,
            PidsLimit: limits[role].pids,
          },
          NetworkingConfig: { EndpointsConfig: { [`edgeecho-${id}-net`]: { Aliases: [role] } } },
        }),
      ),
    );
    await Promise.all(
      containers.map(async (c) => {
        const watch = new ReadyWatch((await c.attach({ stream: true, stdout: true, stderr: true, logs: true })) as never);
        await c.start();
        const outcome = await watch.outcome;
        if (outcome.kind !== 'ready') throw new Error(`raw ${mode}: a container ended before ready`);
      }),
    );
    const info = await containers[1]!.inspect();
    if (!info.NetworkSettings.Ports[`${STREAM_PORT}/tcp`]?.[0]?.HostPort) throw new Error('raw: no published port');
    const ms = performance.now() - t0;
    await removeSession(docker, id);
    rawSubnets.release(subnet);
    return { ms, id };
  }

  async function ours(mode: 'plain' | 'segmented'): Promise<{ ms: number; id: string }> {
    const t0 = performance.now();
    const result = await lifecycle.create({ mode, count: 10 }, { signal, status: (f) => void (typeof f.session === 'string' && made.add(f.session)) });
    return { ms: performance.now() - t0, id: result.id };
  }

  const rows: Array<{ mode: string; ours_ms: number; raw_ms: number; ratio: number; ours: number[]; raw: number[] }> = [];
  try {
    for (const mode of ['plain', 'segmented'] as const) {
      const o: number[] = [];
      const r: number[] = [];
      // one warm-up each, then alternate so drift in the engine hits both alike
      for (let i = -1; i < iterations; i++) {
        for (const [kind, fn] of [['raw', raw], ['ours', ours]] as const) {
          const { ms, id } = await fn(mode);
          await removeSession(docker, id);
          if (i >= 0) (kind === 'raw' ? r : o).push(ms);
        }
      }
      rows.push({ mode, ours_ms: Math.round(median(o)), raw_ms: Math.round(median(r)), ratio: Math.round((median(o) / median(r)) * 100) / 100, ours: o.map(Math.round), raw: r.map(Math.round) });
    }
  } finally {
    for (const id of made) await removeSession(docker, id);
  }
  console.log(`session ready time, median of ${iterations} (ms)`);
  console.log('mode        session.create   raw parallel   ratio (target <= 1.10)');
  for (const row of rows) console.log(`${row.mode.padEnd(12)}${String(row.ours_ms).padStart(14)}${String(row.raw_ms).padStart(15)}${row.ratio.toFixed(2).padStart(8)}`);
  console.log(JSON.stringify({ bench: 'session-ready', iterations, results: rows }));
}

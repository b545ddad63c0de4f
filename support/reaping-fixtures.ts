/**
 * Sessions made of plain `node -e` containers from the host-node base image, labelled exactly like real ones
 * (plus io.edgeecho.test=sessions), for the reaper, sweep and reconcile tests and the reaping bench. They need
 * no emulator image: what matters to reaping is labels, exits and records, not what the containers print.
 */
import type Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { buildHostNodeBase } from '../src/runtime/docker/base-image.js';
import { DockerDriver } from '../src/runtime/docker/driver.js';
import { LABEL_SESSION, type ContainerRef, type Role } from '../src/runtime/driver.js';
import { InstanceScope } from '../src/runtime/instance-scope.js';
import { newInstanceId } from '../src/sessions/session-id.js';
import type { SessionStore } from '../src/sessions/types.js';
import { silentLogger } from '../src/log.js';

export const TEST_LABELS = { 'io.edgeecho.test': 'sessions' };
/** A pool apart from the default one, so concurrent helpers' tests rarely contend for subnets. */
export const TEST_SUBNET_POOL = '10.219.0.0/16';

/** Runs until SIGTERM (forwarded by tini), then exits 0 like an emulator finishing cleanly. */
export const RUN_UNTIL_TERM = "process.on('SIGTERM',()=>process.exit(0));console.log('armed');setInterval(()=>{},1e6)";
export const EXIT_AT_ONCE = 'process.exit(0)';

/** The Docker runtime as a daemon of its own instance sees it (default: a new one), plus dockerode for raw calls. */
export type TestDriver = InstanceScope & { readonly docker: Docker };

/**
 * Pass the same `instance` to see what an earlier "daemon" left; detectors under test on a fresh instance judge
 * nothing the other tests and daemons on this engine made.
 */
export function testDriver(docker: Docker, instance = newInstanceId()): TestDriver {
  const scope = new InstanceScope(new DockerDriver({ docker, subnetPool: TEST_SUBNET_POOL, subnetPrefix: 28, log: silentLogger }), { instance });
  return Object.assign(scope, { docker });
}

export function baseImage(docker: Docker): Promise<string> {
  return buildHostNodeBase(docker, silentLogger);
}

/** A prefix for this run's session ids, so cleanup by session label finds only this run's objects. */
export function runPrefix(): string {
  return 'rt' + randomBytes(3).toString('hex');
}

export interface LaunchOptions {
  /** Role -> the script it runs; default: probe exits at once, stream runs until SIGTERM. */
  scripts?: Partial<Record<Role, string>>;
  /** Record the session (created, network, containers, ready); default true. */
  record?: boolean;
  /** Leave the record in `creating` after its containers (a create the daemon never finished). */
  state?: 'ready' | 'creating';
  now?: number;
  labels?: Record<string, string>;
}

export interface Launched {
  id: string;
  network: { id: string; name: string; subnet: string };
  containers: ContainerRef[];
}

export async function launchSession(driver: TestDriver, store: SessionStore | null, image: string, id: string, options: LaunchOptions = {}): Promise<Launched> {
  const scripts = options.scripts ?? { probe: EXIT_AT_ONCE, stream: RUN_UNTIL_TERM };
  const record = options.record !== false && store !== null;
  const roles = Object.keys(scripts) as Role[];
  if (record) store!.create({ id, mode: roles.includes('segmentation') ? 'segmented' : 'plain', count: 1, payloadBytes: 16, rate: null }, options.now);
  const labels = options.labels ?? TEST_LABELS;
  const network = await driver.createNetwork({ session: id, name: `edgeecho-${id}-net`, labels });
  if (record) store!.update(id, { network }, options.now);
  const containers: ContainerRef[] = [];
  for (const role of roles) {
    const ref = await driver.createContainer({
      session: id,
      role,
      name: `edgeecho-${id}-${role}`,
      image,
      network,
      aliases: [role],
      env: {},
      labels,
      limits: { memoryBytes: 64 * 1024 * 1024, nanoCpus: 0.25e9, pids: 32 },
      command: ['node', '-e', scripts[role]!],
    });
    containers.push(ref);
    if (record) store!.putContainer(id, { id: ref.id, name: ref.name, role, startedAt: null, finishedAt: null, exitCode: null, stats: null }, options.now);
  }
  for (const ref of containers) await driver.docker.getContainer(ref.id).start();
  // A SIGTERM before node has installed its handler would kill it (143) instead of ending it cleanly.
  const armed = containers.filter((c) => scripts[c.role]!.includes("'armed'"));
  await waitFor(async () => (await Promise.all(armed.map((c) => driver.logs(c.id, 5)))).every((out) => out.includes('armed')), 15_000, `containers of ${id} armed`);
  if (record && (options.state ?? 'ready') === 'ready') store!.transition(id, 'ready', undefined, undefined, options.now);
  return { id, network, containers };
}

/** SIGTERM to a container: the scripts above exit 0 on it. */
export async function terminate(docker: Docker, containerId: string): Promise<void> {
  await docker.getContainer(containerId).kill({ signal: 'SIGTERM' });
}

/** Labelled objects of these sessions still in the engine. */
export async function leftovers(docker: Docker, id: string): Promise<number> {
  const filters = { label: [`${LABEL_SESSION}=${id}`] };
  return (await docker.listContainers({ all: true, filters })).length + (await docker.listNetworks({ filters })).length;
}

/** Removes everything labelled with any of these sessions, whatever the test left. */
export async function removeSessions(docker: Docker, ids: Iterable<string>): Promise<void> {
  for (const id of ids) {
    const filters = { label: [`${LABEL_SESSION}=${id}`] };
    for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
    for (const n of await docker.listNetworks({ filters })) await docker.getNetwork(n.Id).remove().catch(() => {});
  }
}

/** Polls until the condition holds or the deadline passes (real engine: events take real time). */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

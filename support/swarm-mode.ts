/**
 * Swarm mode for tests and benches of the swarm runtime, leaving the engine as it was found: an engine not in a
 * swarm is made a single-node one (`docker swarm init`) and leaves it when the process exits; an engine already
 * managing a swarm is used as it is. Either way this node gets a placement label of this process's own, so
 * sessions stay on it even when the swarm has other nodes (which may lack the images), and the label is removed
 * at exit.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';

/** Address pool for the swarm's own networks (ingress): clear of every pool the tests and sessions use (10.213-10.219 but this). */
export const SWARM_ADDR_POOL = '10.218.0.0/16';
export const PLACEMENT_LABEL = 'io.edgeecho.test-placement';

export interface SwarmMode {
  nodeId: string;
  /** Whether this process initialised the swarm (and leaves it at exit). */
  initialised: boolean;
  /** EDGEECHO_SWARM_CONSTRAINTS value keeping sessions on this node. */
  constraint: string;
  placement: { label: string; value: string };
}

let cached: Promise<SwarmMode> | null = null;

export function ensureSwarm(docker: Docker): Promise<SwarmMode> {
  cached ??= setUp(docker);
  return cached;
}

async function setUp(docker: Docker): Promise<SwarmMode> {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; NodeID?: string } };
  let initialised = false;
  if (info.Swarm?.LocalNodeState !== 'active') {
    // Advertised on docker0: a worker made of a container (support/swarm-cluster.ts) reaches the manager there.
    const bridge = (await docker.getNetwork('bridge').inspect()) as { IPAM?: { Config?: Array<{ Gateway?: string }> } };
    const advertise = bridge.IPAM?.Config?.[0]?.Gateway ?? '127.0.0.1';
    execFileSync('docker', ['swarm', 'init', '--advertise-addr', advertise, '--default-addr-pool', SWARM_ADDR_POOL], { stdio: 'pipe' });
    initialised = true;
  } else if (!info.Swarm.ControlAvailable) {
    throw new Error('this engine is a swarm worker: the swarm runtime is tested on a manager (or an engine in no swarm, made one for the run)');
  }
  const nodeId = ((await docker.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID;
  const placement = { label: PLACEMENT_LABEL, value: `run-${process.pid}-${randomBytes(3).toString('hex')}` };
  execFileSync('docker', ['node', 'update', '--label-add', `${placement.label}=${placement.value}`, nodeId], { stdio: 'pipe' });
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    try {
      if (initialised) execFileSync('docker', ['swarm', 'leave', '--force'], { stdio: 'pipe', timeout: 60_000 });
      else execFileSync('docker', ['node', 'update', '--label-rm', placement.label, nodeId], { stdio: 'pipe', timeout: 30_000 });
    } catch (err) {
      console.error(`leaving the engine as found failed: ${(err as Error).message}`);
    }
  };
  process.once('exit', restore);
  // A run cut short (CI's timeout sends SIGTERM) leaves the engine as found too, then dies of the signal.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      restore();
      process.kill(process.pid, signal);
    });
  }
  return { nodeId, initialised, constraint: `${placement.label}=${placement.value}`, placement };
}

/** Services, task containers and networks carrying io.edgeecho.test=<label> (of these sessions, when given). */
export async function labelledSwarmObjects(docker: Docker, testLabel: string, label: string, sessionLabel: string, sessions?: Iterable<string>): Promise<string[]> {
  const filters = { label: [`${testLabel}=${label}`] };
  const wanted = sessions ? new Set(sessions) : null;
  const keep = (labels: Record<string, string> | undefined): boolean => !wanted || wanted.has(labels?.[sessionLabel] ?? '');
  const services = ((await docker.listServices({ filters })) as Array<{ Spec?: { Name?: string; Labels?: Record<string, string> } }>).filter((s) => keep(s.Spec?.Labels)).map((s) => `service ${s.Spec?.Name}`);
  const containers = (await docker.listContainers({ all: true, filters })).filter((c) => keep(c.Labels)).map((c) => `container ${c.Names[0]?.replace(/^\//, '') ?? c.Id}`);
  const networks = (await docker.listNetworks({ filters })).filter((n) => keep(n.Labels)).map((n) => `network ${n.Name}`);
  return [...services, ...containers, ...networks];
}

/**
 * Removes every service and network carrying io.edgeecho.test=<label>, and waits (up to 30 s) until their task
 * containers, which the node removes a moment after its service, are gone too.
 */
export async function removeLabelledSwarm(docker: Docker, testLabel: string, label: string): Promise<void> {
  const filters = { label: [`${testLabel}=${label}`] };
  const services = await docker.listServices({ filters }).catch(() => []);
  await Promise.all(services.map((s) => docker.getService(s.ID!).remove().catch(() => undefined)));
  for (let attempt = 0; attempt < 120; attempt++) {
    const [networks, containers] = await Promise.all([docker.listNetworks({ filters }).catch(() => []), docker.listContainers({ all: true, filters }).catch(() => [])]);
    if (!networks.length && !containers.length) return;
    // A removed service's task leaves its network a moment later.
    await Promise.all(networks.map((n) => docker.getNetwork(n.Id).remove().catch(() => undefined)));
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The lower bound benches compare session creates against: a session's network and hardened containers made
 * with raw parallel dockerode calls (no daemon, no records, no status frames), waiting for the same ready lines
 * and the stream's published port. Objects carry the given labels and are removed by session label.
 */
import type Docker from 'dockerode';
import type { Config } from '../src/config.js';
import { TMPFS_TMP, CONTAINER_USER } from '../src/runtime/docker/driver.js';
import { ReadyWatch } from '../src/runtime/docker/readiness.js';
import { SubnetPool } from '../src/runtime/docker/subnets.js';
import { LABEL_MANAGED, LABEL_SESSION, type Role } from '../src/runtime/driver.js';
import { newSessionId } from '../src/sessions/session-id.js';
import { rolesOf, type SessionMode } from '../src/workflow/session-spec.js';
import { PROBE_PORT, STREAM_PORT } from '../src/workflow/session-workflows.js';

export async function removeSession(docker: Docker, id: string): Promise<void> {
  const filters = { label: [`${LABEL_SESSION}=${id}`] };
  // A swarm session's services first (on an engine in a swarm): their task containers go with them.
  const services = await docker.listServices({ filters }).catch(() => []);
  await Promise.all(services.map((s) => docker.getService(s.ID!).remove().catch(() => {})));
  await Promise.all((await docker.listContainers({ all: true, filters })).map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
  // An overlay network is refused while a removed service's task still leaves it: a few tries, bounded.
  for (let attempt = 0; attempt < (services.length ? 40 : 1); attempt++) {
    const networks = await docker.listNetworks({ filters });
    if (!networks.length) return;
    for (const n of networks) await docker.getNetwork(n.Id).remove().catch(() => {});
    if (attempt) await new Promise((r) => setTimeout(r, 250));
  }
}

/** Makes raw sessions; their subnets come from a pool of their own, past what existing networks hold. */
export async function rawSessions(docker: Docker, config: Config, labels: Record<string, string>) {
  const images: Record<Role, string> = { probe: config.imageProbe, stream: config.imageStream, segmentation: config.imageSegmentation };
  const limits = { probe: config.limitsProbe, stream: config.limitsStream, segmentation: config.limitsSegmentation };
  const env = (id: string, role: Role, mode: string): string[] =>
    role === 'probe'
      ? [`PROBE_PORT=${PROBE_PORT}`, `PROBE_ID=${id}`, 'PROBE_COUNT=10', 'PROBE_PAYLOAD_BYTES=64', 'PROBE_RATE=0']
      : role === 'stream'
        ? ['PROBE_HOST=probe', `PROBE_PORT=${PROBE_PORT}`, `STREAM_PORT=${STREAM_PORT}`, `STREAM_MODE=${mode}`, 'STREAM_GRACE_MS=1000']
        : ['STREAM_HOST=stream', `STREAM_PORT=${STREAM_PORT}`];
  const subnets = new SubnetPool('10.215.0.0/16', 28);
  for (const n of await docker.listNetworks()) for (const c of n.IPAM?.Config ?? []) if (c.Subnet) subnets.markUsed(c.Subnet);

  /** Time to ready of one raw session (ms); it is removed before this resolves. `made` learns its id at once. */
  return async function raw(mode: SessionMode, made: Set<string>): Promise<{ ms: number; id: string }> {
    const id = newSessionId();
    const all = { ...labels, [LABEL_MANAGED]: 'true', [LABEL_SESSION]: id };
    const t0 = performance.now();
    made.add(id);
    const subnet = subnets.allocate();
    const net = await docker.createNetwork({ Name: `edgeecho-${id}-net`, Labels: all, IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] } });
    const roles = rolesOf(mode);
    const containers = await Promise.all(
      roles.map((role) =>
        docker.createContainer({
          name: `edgeecho-${id}-${role}`,
          Image: images[role],
          Env: env(id, role, mode),
          Labels: { ...all, 'io.edgeecho.role': role },
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
    let port: string | undefined;
    await Promise.all(
      containers.map(async (c, i) => {
        const watch = new ReadyWatch((await c.attach({ stream: true, stdout: true, stderr: true, logs: true })) as never);
        await c.start();
        // Read at once, as the daemon does: a short segmented session may end (and lose its port) soon after.
        if (roles[i] === 'stream') port = (await c.inspect()).NetworkSettings.Ports[`${STREAM_PORT}/tcp`]?.[0]?.HostPort;
        const outcome = await watch.outcome;
        if (outcome.kind !== 'ready') throw new Error(`raw ${mode}: a container ended before ready`);
      }),
    );
    if (!port) throw new Error('raw: no published port');
    const ms = performance.now() - t0;
    await removeSession(docker, id);
    subnets.release(subnet);
    return { ms, id };
  };
}

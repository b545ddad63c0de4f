/**
 * The dockerode RuntimeDriver. Every object it creates carries io.edgeecho.* labels and an
 * edgeecho-<session>-<role> name, so the engine itself answers "what is ours" after a restart.
 */
import { randomInt } from 'node:crypto';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import { EdgeechoError } from '../../../protocol/errors.js';
import { silentLogger } from '../../log.js';
import {
  LABEL_INSTANCE,
  LABEL_MANAGED,
  LABEL_ROLE,
  LABEL_SESSION,
  type ContainerRef,
  type ContainerSpec,
  type ContainerState,
  type ContainerUsage,
  type ManagedObjects,
  type NetworkRef,
  type NetworkSpec,
  type ReadyInfo,
  type Role,
  type RuntimeDriver,
  type RuntimeEvent,
} from '../driver.js';
import { dockerMessage, isStatus, mapDockerError } from './errors.js';
import { SessionNetworks } from './session-networks.js';
import { readEvents } from './events.js';
import { logText } from './output.js';
import { awaitReady, ReadyWatch, type OutputSource } from './readiness.js';
import { SubnetPool } from './subnets.js';

/** The emulators write nothing but /tmp (the root filesystem is read-only). */
export const TMPFS_TMP = 'rw,noexec,nosuid,size=16m';
export const CONTAINER_USER = '1000:1000';

export interface DockerDriverOptions {
  /** An existing client (tests share one); otherwise one is made for socketPath. */
  docker?: Docker;
  socketPath?: string;
  subnetPool: string;
  subnetPrefix: number;
  log?: Logger;
}

export { MAX_SUBNET_ATTEMPTS } from './session-networks.js';

export class DockerDriver implements RuntimeDriver {
  readonly name = 'docker';
  readonly docker: Docker;
  readonly subnets: SubnetPool;
  private readonly log: Logger;
  private readonly networks: SessionNetworks;
  /** Output watches opened before start, consumed by waitReady. */
  private readonly watches = new Map<string, { name: string; watch: ReadyWatch }>();
  /** Containers created with an open stdin: their first line is a parked line, which the start watch settles on. */
  private readonly parkable = new Set<string>();
  /** Stdin attaches opened as a container parked, so a claim writes at once instead of attaching first. */
  private readonly stdins = new Map<string, Promise<NodeJS.ReadWriteStream>>();

  constructor(options: DockerDriverOptions) {
    this.docker = options.docker ?? new Docker({ socketPath: options.socketPath ?? '/var/run/docker.sock' });
    this.subnets = new SubnetPool(options.subnetPool, options.subnetPrefix, { start: randomInt(2 ** 30) });
    this.log = options.log ?? silentLogger;
    this.networks = new SessionNetworks(this.docker, this.subnets, this.log);
  }

  static fromConfig(config: { dockerSocket: string; subnetPool: string; subnetPrefix: number }, log?: Logger): DockerDriver {
    return new DockerDriver({ socketPath: config.dockerSocket, subnetPool: config.subnetPool, subnetPrefix: config.subnetPrefix, ...(log ? { log } : {}) });
  }

  async ping(signal?: AbortSignal): Promise<void> {
    try {
      await (this.docker.ping as (opts: object) => Promise<unknown>).call(this.docker, signal ? { abortSignal: signal } : {});
    } catch (err) {
      throw mapDockerError(err, 'ping');
    }
  }

  createNetwork(spec: NetworkSpec): Promise<NetworkRef> {
    return this.networks.create(spec, (subnet) => ({
      Name: spec.name,
      Driver: 'bridge',
      CheckDuplicate: true,
      Labels: { ...spec.labels, [LABEL_MANAGED]: 'true', [LABEL_SESSION]: spec.session },
      IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] },
    }));
  }

  removeNetwork(id: string): Promise<void> {
    return this.networks.remove(id);
  }

  async createContainer(spec: ContainerSpec): Promise<ContainerRef> {
    const exposed: Record<string, object> = {};
    const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
    if (spec.publish) {
      exposed[`${spec.publish.port}/tcp`] = {};
      // HostPort "": the engine picks a free port, read back by inspect once started.
      bindings[`${spec.publish.port}/tcp`] = [{ HostIp: spec.publish.hostIp, HostPort: '' }];
    }
    try {
      const container = await this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
        ...(spec.command ? { Cmd: spec.command } : {}),
        Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
        Labels: { ...spec.labels, [LABEL_MANAGED]: 'true', [LABEL_SESSION]: spec.session, [LABEL_ROLE]: spec.role },
        User: CONTAINER_USER,
        ExposedPorts: exposed,
        AttachStdout: true,
        AttachStderr: true,
        // StdinOnce false: a claim's attach closing must not close the emulator's stdin.
        ...(spec.openStdin ? { OpenStdin: true, StdinOnce: false } : {}),
        HostConfig: {
          // Node as PID 1 ignores SIGTERM; tini as PID 1 forwards it.
          Init: true,
          NetworkMode: spec.network.name,
          PortBindings: bindings,
          Privileged: false,
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges'],
          ReadonlyRootfs: true,
          Tmpfs: { '/tmp': TMPFS_TMP },
          Memory: spec.limits.memoryBytes,
          MemorySwap: spec.limits.memoryBytes,
          NanoCpus: spec.limits.nanoCpus,
          PidsLimit: spec.limits.pids,
          RestartPolicy: { Name: 'no' },
        },
        NetworkingConfig: { EndpointsConfig: { [spec.network.name]: { Aliases: spec.aliases } } },
      });
      if (spec.openStdin) this.parkable.add(container.id);
      return { id: container.id, name: spec.name, role: spec.role };
    } catch (err) {
      throw mapDockerError(err, `create container ${spec.name} from ${spec.image}`);
    }
  }

  async startContainer(id: string): Promise<void> {
    const container = this.docker.getContainer(id);
    let source: OutputSource;
    try {
      // Attached before start, so a ready line printed at once is not missed.
      source = (await container.attach({ stream: true, stdout: true, stderr: true, logs: true })) as unknown as OutputSource;
    } catch (err) {
      throw mapDockerError(err, `attach to container ${id}`);
    }
    const watch = new ReadyWatch(source, this.parkable.has(id));
    this.parkable.delete(id);
    this.watches.set(id, { name: id, watch });
    try {
      await container.start();
    } catch (err) {
      watch.close();
      this.watches.delete(id);
      if (isStatus(err, 304)) return;
      throw mapDockerError(err, `start container ${id}`);
    }
  }

  async waitReady(id: string, options: { timeoutMs: number; signal?: AbortSignal; parked?: boolean }): Promise<ReadyInfo> {
    let entry = this.watches.get(id);
    if (!entry) {
      // Not started by this driver (e.g. adopted after a restart): the log replays from the start.
      try {
        const stream = await this.docker.getContainer(id).logs({ follow: true, stdout: true, stderr: true });
        entry = { name: id, watch: new ReadyWatch(stream as unknown as OutputSource, options.parked === true) };
      } catch (err) {
        throw mapDockerError(err, `follow the output of container ${id}`);
      }
    }
    this.watches.delete(id);
    const line = await this.awaitOutput(id, entry.watch, options);
    if (line.event === 'parked') this.stdins.set(id, this.attachStdin(id));
    return line;
  }

  private attachStdin(id: string): Promise<NodeJS.ReadWriteStream> {
    const attached = (this.docker.getContainer(id).attach({ stream: true, hijack: true, stdin: true, stdout: true, stderr: true }) as Promise<NodeJS.ReadWriteStream>).then((stream) => {
      // A broken attach (engine restart, container gone) is dropped: the claim attaches anew.
      const drop = (): void => void (this.stdins.get(id) === attached && this.stdins.delete(id));
      stream.on('close', drop);
      stream.on('error', drop);
      return stream;
    });
    attached.catch(() => this.stdins.get(id) === attached && this.stdins.delete(id));
    return attached;
  }

  async unpark(id: string, parameters: Record<string, string>, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ReadyInfo> {
    let stream: NodeJS.ReadWriteStream;
    const early = this.stdins.get(id);
    this.stdins.delete(id);
    try {
      // Without logs: only what the emulator prints from now on (its ready line), not its parked line.
      stream = (await early?.catch(() => null)) ?? (await this.attachStdin(id));
      this.stdins.delete(id);
      if ((stream as unknown as { destroyed?: boolean }).destroyed) stream = await this.attachStdin(id);
      this.stdins.delete(id);
    } catch (err) {
      throw mapDockerError(err, `attach to the stdin of parked container ${id}`);
    }
    const watch = new ReadyWatch(stream as unknown as OutputSource);
    stream.write(JSON.stringify(parameters) + '\n');
    return this.awaitOutput(id, watch, options);
  }

  private awaitOutput(id: string, watch: ReadyWatch, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ReadyInfo> {
    return awaitReady(watch, {
      name: `container ${id.slice(0, 12)}`,
      timeoutMs: options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      onEnded: async (stderrTail) => {
        let state: ContainerState | null = null;
        try {
          state = await this.inspectContainer(id);
        } catch {
          // removed meanwhile: the stderr tail is all there is
        }
        const who = state ? `${state.name} (${state.role ?? 'container'})` : `container ${id.slice(0, 12)}`;
        const how = state
          ? state.running
            ? 'closed its output while running'
            : `exited with code ${state.exitCode}${state.oomKilled ? ' (killed: out of memory)' : ''}`
          : 'is gone';
        return new EdgeechoError(
          'INTERNAL',
          `${who} ${how} before printing its ready line${stderrTail.length ? `; last stderr:\n${stderrTail.join('\n')}` : '; no stderr output'}`,
          { container: state?.name ?? id, exit_code: state?.exitCode ?? null, oom_killed: state?.oomKilled ?? false, stderr: stderrTail },
        );
      },
    });
  }

  async stopContainer(id: string, timeoutS: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: timeoutS });
    } catch (err) {
      if (isStatus(err, 304)) return;
      throw mapDockerError(err, `stop container ${id}`);
    }
  }

  async removeContainer(id: string): Promise<void> {
    this.parkable.delete(id);
    void this.stdins.get(id)?.then((s) => (s as unknown as { destroy(): void }).destroy(), () => undefined);
    this.stdins.delete(id);
    this.watches.get(id)?.watch.close();
    this.watches.delete(id);
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      if (isStatus(err, 404)) return;
      // "removal of container ... is already in progress"
      if (isStatus(err, 409) && /already in progress/i.test(dockerMessage(err))) return;
      throw mapDockerError(err, `remove container ${id}`);
    }
  }

  async inspectContainer(id: string): Promise<ContainerState> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(id).inspect();
    } catch (err) {
      throw mapDockerError(err, `inspect container ${id}`);
    }
    const labels = info.Config?.Labels ?? {};
    const state: ContainerState = {
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      running: info.State.Running,
      status: info.State.Status,
      exitCode: info.State.Running || info.State.Status === 'created' ? null : info.State.ExitCode,
      oomKilled: info.State.OOMKilled,
      startedAt: zeroTimeToNull(info.State.StartedAt),
      finishedAt: zeroTimeToNull(info.State.FinishedAt),
    };
    if (labels[LABEL_ROLE]) state.role = labels[LABEL_ROLE] as Role;
    if (labels[LABEL_SESSION]) state.session = labels[LABEL_SESSION];
    const address = Object.values(info.NetworkSettings?.Networks ?? {}).find((n) => n?.IPAddress)?.IPAddress;
    if (address) state.address = address;
    for (const bindings of Object.values(info.NetworkSettings?.Ports ?? {})) {
      const binding = bindings?.[0];
      if (binding?.HostPort) {
        state.published = { host: binding.HostIp || '0.0.0.0', port: Number(binding.HostPort) };
        break;
      }
    }
    return state;
  }

  async logs(id: string, tailLines: number): Promise<string> {
    try {
      return logText(await this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail: tailLines, follow: false }));
    } catch (err) {
      throw mapDockerError(err, `read the logs of container ${id}`);
    }
  }

  /** Every labelled container, optionally of one session. */
  async listContainers(session?: string): Promise<ContainerState[]> {
    const label = [`${LABEL_MANAGED}=true`];
    if (session) label.push(`${LABEL_SESSION}=${session}`);
    let list: Docker.ContainerInfo[];
    try {
      list = await this.docker.listContainers({ all: true, filters: { label } });
    } catch (err) {
      throw mapDockerError(err, 'list containers');
    }
    return list.map((c) => {
      const exited = /^Exited \((-?\d+)\)/.exec(c.Status);
      const state: ContainerState = {
        id: c.Id,
        name: (c.Names[0] ?? '').replace(/^\//, ''),
        running: c.State === 'running',
        status: c.State,
        exitCode: exited ? Number(exited[1]) : null,
        oomKilled: false,
        startedAt: null,
        finishedAt: null,
        created: new Date(c.Created * 1000).toISOString(),
      };
      if (c.Labels[LABEL_ROLE]) state.role = c.Labels[LABEL_ROLE] as Role;
      if (c.Labels[LABEL_SESSION]) state.session = c.Labels[LABEL_SESSION];
      if (c.Labels[LABEL_INSTANCE]) state.instance = c.Labels[LABEL_INSTANCE];
      const port = c.Ports.find((p) => p.PublicPort);
      if (port) state.published = { host: port.IP || '0.0.0.0', port: port.PublicPort };
      return state;
    });
  }

  async listManaged(): Promise<ManagedObjects> {
    const [containers, networks] = await Promise.all([this.listContainers(), this.networks.listManaged()]);
    return { containers, networks };
  }

  async *events(options: { since?: number; signal: AbortSignal }): AsyncIterable<RuntimeEvent> {
    const query: Record<string, unknown> = { filters: { label: [`${LABEL_MANAGED}=true`], type: ['container', 'network'] }, abortSignal: options.signal };
    if (options.since !== undefined) query.since = options.since;
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await this.docker.getEvents(query)) as NodeJS.ReadableStream;
    } catch (err) {
      if (options.signal.aborted) return;
      throw mapDockerError(err, 'follow engine events');
    }
    yield* readEvents(stream, options.signal);
  }

  stats(id: string): Promise<ContainerUsage> {
    return containerUsage(this.docker, id, `container ${id}`);
  }
}

/** One reading of a container's usage on this engine; `what` names it in errors (the role's id as the seam knows it). */
export async function containerUsage(docker: Docker, containerId: string, what: string): Promise<ContainerUsage> {
  let s: Docker.ContainerStats;
  try {
    s = (await docker.getContainer(containerId).stats({ stream: false })) as Docker.ContainerStats;
  } catch (err) {
    throw mapDockerError(err, `stats of ${what}`);
  }
  // The engine answers an empty reading when it could not collect one (a container starting or stopping, a loaded
  // host): no memory limit at all is never real for our containers, so it is reported as unavailable, not as zeros.
  if (!s.memory_stats?.limit) throw new EdgeechoError('RUNTIME_UNAVAILABLE', `stats of ${what}: the engine returned an empty reading`, { container: containerId });
  return usageFromStats(s);
}

function zeroTimeToNull(time: string | undefined): string | null {
  return !time || time.startsWith('0001-01-01') ? null : time;
}

/** cpu% as `docker stats` computes it: container delta over system delta, times the CPUs online. */
export function usageFromStats(s: Docker.ContainerStats): ContainerUsage {
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const systemDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const cpus = s.cpu_stats?.online_cpus || s.cpu_stats?.cpu_usage?.percpu_usage?.length || 1;
  const cpuPercent = systemDelta > 0 && cpuDelta > 0 ? (cpuDelta / systemDelta) * cpus * 100 : 0;
  const stats = (s.memory_stats?.stats ?? {}) as Record<string, number>;
  // cache (cgroup v1) / inactive_file (v2) is reclaimable and not counted, as docker stats does
  const cache = stats.inactive_file ?? stats.total_inactive_file ?? stats.cache ?? 0;
  const usage = Math.max(0, (s.memory_stats?.usage ?? 0) - cache);
  return { cpuPercent: Math.round(cpuPercent * 100) / 100, memoryBytes: usage, memoryLimitBytes: s.memory_stats?.limit ?? 0 };
}

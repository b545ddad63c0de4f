/**
 * The Docker Swarm RuntimeDriver, talking to a manager's engine. A session is an attachable overlay network and
 * one service per role (service-spec.ts), all pinned to the node `place` chose; the seam's container id is the
 * service id. A role's state is its task's (swarm-objects.ts), its output the service's logs (the manager fetches
 * them from the node), its events the task watch's (task-watch.ts). Everything carries the io.edgeecho.* labels,
 * so the manager answers "what is ours" after a restart, as the engine does for the Docker runtime.
 */
import { randomInt } from 'node:crypto';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import { EdgeechoError } from '../../../protocol/errors.js';
import { silentLogger } from '../../log.js';
import {
  LABEL_MANAGED,
  LABEL_SESSION,
  type ContainerRef,
  type ContainerSpec,
  type ContainerState,
  type ContainerUsage,
  type ManagedObjects,
  type NetworkRef,
  type NetworkSpec,
  type Placement,
  type PlacementRequest,
  type ReadyInfo,
  type RuntimeDriver,
  type RuntimeEvent,
  type RuntimeNode,
} from '../driver.js';
import { containerUsage } from '../docker/driver.js';
import { dockerMessage, isStatus, mapDockerError } from '../docker/errors.js';
import { logText } from '../docker/output.js';
import { awaitReady, ReadyWatch, type OutputSource } from '../docker/readiness.js';
import { SessionNetworks } from '../docker/session-networks.js';
import { SubnetPool } from '../docker/subnets.js';
import { DEFAULT_SWARM_PORTS, HostPorts, portsInUse, type PortRange } from './host-ports.js';
import { followLocalExits } from './local-exits.js';
import { choose, describeNodes, loadsByNode, type Constraint, type Demand } from './placement.js';
import { labelsOf, overlayNetworkSpec, serviceSpec, type EndpointMode } from './service-spec.js';
import { LABEL_STOPPED, latestTask, LOST_NODE_STATES, nodeView, removedNode, serviceState, TERMINAL_TASK_STATES, type NodeView, type SwarmNode, type SwarmService, type SwarmTask } from './swarm-objects.js';
import { TaskWatch, type SwarmListing } from './task-watch.js';

export interface SwarmDriverOptions {
  docker?: Docker;
  socketPath?: string;
  subnetPool: string;
  subnetPrefix: number;
  endpointMode: EndpointMode;
  stopGraceS: number;
  constraints: Constraint[];
  /** A node's CPUs times this is what session limits placed there may add up to. */
  cpuRatio: number;
  /** How often the manager's task and node lists are read for events. */
  pollMs: number;
  /** Host ports streams are published on (EDGEECHO_SWARM_PORTS). */
  ports?: PortRange;
  log?: Logger;
}

/** How long a removed service's task may keep its endpoint on the session network before the network goes. */
export const NETWORK_REMOVE_WAIT_MS = 15_000;
/** A node id no node has: a stopped service's replacement task is never placed. */
const STOPPED_CONSTRAINT = 'node.id==edgeecho-stopped';
/** How long reading a service's last log lines may take (its node may not answer). */
export const LOGS_TIMEOUT_MS = 5_000;
/** How often waitReady and stop look at a task's state. */
const TASK_LOOK_MS = 200;
/** Output a task printed just before it ended may still be on its way through the manager when the end is seen. */
const LAST_OUTPUT_MS = 300;

export class SwarmDriver implements RuntimeDriver {
  readonly name = 'swarm';
  readonly docker: Docker;
  readonly subnets: SubnetPool;
  private readonly log: Logger;
  private readonly networks: SessionNetworks;
  private readonly watch: TaskWatch;
  /** Placements made here whose services may not be listed yet, by session. */
  private readonly placed = new Map<string, { node: string; demand: Demand }>();
  /** The session of each network made here. */
  private readonly networkSessions = new Map<string, string>();
  /** Services made here, by session: once the last is removed, the placement is the listing's (nothing) again. */
  private readonly sessionServices = new Map<string, Set<string>>();
  private readonly hostPorts: HostPorts;
  /** When each task was first seen running (the manager keeps only a task's latest status time). */
  private readonly startedAt = new Map<string, string>();
  private selfNode: Promise<string> | null = null;
  private placing: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: SwarmDriverOptions) {
    this.docker = options.docker ?? new Docker({ socketPath: options.socketPath ?? '/var/run/docker.sock' });
    this.subnets = new SubnetPool(options.subnetPool, options.subnetPrefix, { start: randomInt(2 ** 30) });
    this.log = options.log ?? silentLogger;
    this.networks = new SessionNetworks(this.docker, this.subnets, this.log);
    this.hostPorts = new HostPorts(options.ports ?? DEFAULT_SWARM_PORTS, randomInt(2 ** 30));
    this.watch = new TaskWatch(() => this.listing(), {
      intervalMs: options.pollMs,
      log: this.log,
      local: (signal, onExit) => followLocalExits(this.docker, signal, onExit),
    });
  }

  async ping(signal?: AbortSignal): Promise<void> {
    try {
      await (this.docker.ping as (opts: object) => Promise<unknown>).call(this.docker, signal ? { abortSignal: signal } : {});
    } catch (err) {
      throw mapDockerError(err, 'ping');
    }
  }

  /** The swarm as this engine sees it: whether it is in one, and whether it is a manager. */
  async swarmInfo(): Promise<{ state: string; manager: boolean; nodeId: string }> {
    let info: { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; NodeID?: string } };
    try {
      info = (await this.docker.info()) as typeof info;
    } catch (err) {
      throw mapDockerError(err, 'info');
    }
    return { state: info.Swarm?.LocalNodeState ?? 'inactive', manager: info.Swarm?.ControlAvailable === true, nodeId: info.Swarm?.NodeID ?? '' };
  }

  /**
   * One placement at a time in this process, each reading the nodes after the last was held, so concurrent creates
   * never book the same room twice. Another daemon placing at the same moment is not seen (instances share the
   * nodes, not their pending placements): nodes can be overcommitted by that much, briefly.
   */
  place(request: PlacementRequest): Promise<Placement> {
    const placing = this.placing.then(async () => {
      const node = choose(await this.nodes(), request.demand);
      // Held until its services are gone (teardown, rollback) or unplace; meanwhile it counts instead of them.
      this.placed.set(request.session, { node: node.id, demand: request.demand });
      return { node: node.id, details: { node: node.hostname, node_id: node.id.slice(0, 12), address: node.address } };
    });
    this.placing = placing.catch(() => undefined);
    return placing;
  }

  unplace(session: string): void {
    this.placed.delete(session);
  }

  async nodes(): Promise<RuntimeNode[]> {
    const [nodes, services, tasks] = await Promise.all([this.listNodes(), this.listServices(true), this.listTasks(true)]);
    return describeNodes(nodes, loadsByNode(services, tasks, this.placed), { constraints: this.options.constraints, cpuRatio: this.options.cpuRatio });
  }

  async createNetwork(spec: NetworkSpec): Promise<NetworkRef> {
    const network = await this.networks.create(spec, (subnet) => overlayNetworkSpec(spec, subnet));
    this.networkSessions.set(network.id, spec.session);
    return network;
  }

  async removeNetwork(id: string): Promise<void> {
    const deadline = Date.now() + NETWORK_REMOVE_WAIT_MS;
    await this.tasksGone(id, deadline);
    // A removed service's task leaves the network a moment later, on its node: until then the manager refuses.
    for (;;) {
      try {
        await this.networks.remove(id);
        break;
      } catch (err) {
        if (!/active endpoints|in use/i.test(dockerMessage(err)) || Date.now() > deadline) throw err;
        await sleep(250);
      }
    }
    // The manager's engine keeps its own copy of the network while a container of it is still attached here.
    while (Date.now() < deadline && (await this.networkListed(id))) await sleep(TASK_LOOK_MS);
    const session = this.networkSessions.get(id);
    this.networkSessions.delete(id);
    if (session) {
      this.placed.delete(session);
      this.sessionServices.delete(session);
    }
  }

  /**
   * The session's services are removed before its network; their task containers go a moment later, on their
   * nodes, and the manager drops a task once its node reports it removed. Waited for here (after the session's
   * outcome is recorded), so a finished session has left nothing on any node that answers.
   */
  private async tasksGone(networkId: string, deadline: number): Promise<void> {
    let session = this.networkSessions.get(networkId);
    if (!session) {
      const network = await this.docker.getNetwork(networkId).inspect().catch(() => null);
      session = (network as { Labels?: Record<string, string> } | null)?.Labels?.[LABEL_SESSION];
    }
    if (!session) return;
    while (Date.now() < deadline) {
      const [tasks, nodes] = await Promise.all([this.listTasksOf(session), this.listNodes()]);
      const answering = new Set(nodes.filter((n) => !LOST_NODE_STATES.has(n.Status?.State ?? 'unknown')).map((n) => n.ID));
      // A node that is down removes its containers when it comes back, a removed one never: nothing here can wait.
      if (tasks.every((t) => t.NodeID && !answering.has(t.NodeID))) return;
      await sleep(TASK_LOOK_MS);
    }
  }

  async createContainer(spec: ContainerSpec): Promise<ContainerRef> {
    // A role created without a placement joins its session's, or places the session by its own limits.
    const node = spec.node ?? this.placed.get(spec.session)?.node ?? (await this.place({ session: spec.session, demand: spec.limits })).node;
    const hostPort = spec.publish ? this.hostPorts.take(node, spec.name, portsInUse(await this.listServices(true), node)) : undefined;
    let id: string;
    try {
      const options = { ...this.options, ...(hostPort ? { hostPort } : {}) };
      const created = (await this.docker.createService(serviceSpec({ ...spec, node }, options) as unknown as Docker.CreateServiceOptions)) as { id?: string; ID?: string };
      id = created.id ?? created.ID ?? '';
    } catch (err) {
      throw mapDockerError(err, `create service ${spec.name} from ${spec.image}`);
    } finally {
      // Made: its spec names the port from now on; failed: the port is free again.
      this.hostPorts.release(spec.name);
    }
    this.watch.known(id, labelsOf(spec));
    this.watch.start();
    const services = this.sessionServices.get(spec.session) ?? new Set<string>();
    this.sessionServices.set(spec.session, services.add(id));
    return { id, name: spec.name, role: spec.role };
  }

  /** Scales the service to its one replica: the swarm schedules the task on the pinned node. */
  async startContainer(id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const service = await this.inspectService(id);
      if ((service.Spec.Mode?.Replicated?.Replicas ?? 0) >= 1) return;
      try {
        await this.docker.getService(id).update({ version: service.Version?.Index, ...service.Spec, Mode: { Replicated: { Replicas: 1 } } } as never);
        return;
      } catch (err) {
        // Another update between the read and the write: read again.
        if (attempt < 3 && /out of sequence/i.test(dockerMessage(err))) continue;
        throw mapDockerError(err, `start service ${id}`);
      }
    }
  }

  async waitReady(id: string, options: { timeoutMs: number; signal?: AbortSignal; parked?: boolean }): Promise<ReadyInfo> {
    let stream: OutputSource;
    try {
      // The service's log from its start, followed: a ready line printed at once is read too.
      stream = (await this.docker.getService(id).logs({ follow: true, stdout: true, stderr: true })) as unknown as OutputSource;
    } catch (err) {
      throw mapDockerError(err, `follow the output of service ${id}`);
    }
    const watch = new ReadyWatch(stream, options.parked === true);
    // The log stream of a service does not end with its task: the task's own state says when it ended.
    let ended: ContainerState | null = null;
    const looking = new AbortController();
    void (async () => {
      while (!looking.signal.aborted) {
        await sleep(TASK_LOOK_MS, looking.signal);
        const state = await this.inspectContainer(id).catch(() => null);
        if (looking.signal.aborted) return;
        if (state && (TERMINAL_TASK_STATES.has(state.status) || state.ended)) {
          ended = state;
          await sleep(LAST_OUTPUT_MS, looking.signal);
          watch.close();
          return;
        }
      }
    })();
    try {
      const info = await awaitReady(watch, {
        name: `service ${id.slice(0, 12)}`,
        timeoutMs: options.timeoutMs,
        ...(options.signal ? { signal: options.signal } : {}),
        onEnded: async (stderrTail) => {
          const state = ended ?? (await this.inspectContainer(id).catch(() => null));
          const who = state ? `${state.name} (${state.role ?? 'service'})` : `service ${id.slice(0, 12)}`;
          const how = !state ? 'is gone' : state.ended ? state.ended : `exited with code ${state.exitCode}`;
          return new EdgeechoError(
            'INTERNAL',
            `${who} ${how} before printing its ready line${stderrTail.length ? `; last stderr:\n${stderrTail.join('\n')}` : '; no stderr output'}`,
            { container: state?.name ?? id, exit_code: state?.exitCode ?? null, oom_killed: false, stderr: stderrTail, ...(state?.ended ? { runtime: state.ended } : {}) },
          );
        },
      });
      return info;
    } finally {
      looking.abort();
    }
  }

  /**
   * Stops the role's task the way `docker stop` stops a container: it gets SIGTERM, then SIGKILL after the service's
   * grace, and it stays, stopped, with its exit code and its log until the service is removed. Scaling to zero would
   * delete the task (and its exit code and log) a moment after it ends; instead the service is pinned to a node that
   * does not exist and labelled stopped, so the swarm stops the task and the replacement it makes is never placed.
   */
  async stopContainer(id: string, timeoutS: number): Promise<void> {
    let service: SwarmService;
    try {
      service = await this.inspectService(id);
    } catch (err) {
      if (err instanceof EdgeechoError && err.code === 'NOT_FOUND') return;
      throw err;
    }
    const replicas = service.Spec.Mode?.Replicated?.Replicas ?? 0;
    if (replicas > 0 && service.Spec.Labels?.[LABEL_STOPPED] !== 'true') {
      const template = service.Spec.TaskTemplate ?? {};
      const spec = {
        ...service.Spec,
        Labels: { ...service.Spec.Labels, [LABEL_STOPPED]: 'true' },
        TaskTemplate: { ...template, Placement: { ...template.Placement, Constraints: [...(template.Placement?.Constraints ?? []), STOPPED_CONSTRAINT] } },
      };
      try {
        await this.docker.getService(id).update({ version: service.Version?.Index, ...spec } as never);
      } catch (err) {
        if (isStatus(err, 404)) return;
        throw mapDockerError(err, `stop service ${id}`);
      }
    }
    const graceS = Math.max(timeoutS, this.options.stopGraceS);
    const deadline = Date.now() + (graceS + 10) * 1000;
    while (Date.now() < deadline) {
      const tasks = await this.listTasks(false, id).catch(() => null);
      if (tasks) this.watch.observeTasks(tasks);
      const latest = tasks ? latestTask(tasks) : null;
      if (!latest || !latest.NodeID || TERMINAL_TASK_STATES.has(latest.Status.State)) return;
      await sleep(TASK_LOOK_MS);
    }
    throw new EdgeechoError('TIMEOUT', `service ${id.slice(0, 12)}'s task did not end within ${graceS + 10} s of being stopped`, { container: id });
  }

  async removeContainer(id: string): Promise<void> {
    // Its end is recorded before the tasks go with the service (the watch may not have looked since).
    const tasks = await this.listTasks(false, id).catch(() => null);
    if (tasks) this.watch.observeTasks(tasks);
    try {
      await this.docker.getService(id).remove();
    } catch (err) {
      if (!isStatus(err, 404)) throw mapDockerError(err, `remove service ${id}`);
    }
    this.watch.removed(id);
    for (const t of tasks ?? []) this.startedAt.delete(t.ID);
    for (const [session, services] of this.sessionServices) {
      if (!services.delete(id) || services.size > 0) continue;
      // Its services are gone: what the session held on its node is free (its network holds nothing).
      this.sessionServices.delete(session);
      this.placed.delete(session);
    }
  }

  async inspectContainer(id: string): Promise<ContainerState> {
    const service = await this.inspectService(id);
    const tasks = await this.listTasks(false, id);
    const task = latestTask(tasks);
    let node: NodeView | null = null;
    if (task?.NodeID) {
      try {
        node = nodeView((await this.docker.getNode(task.NodeID).inspect()) as SwarmNode);
      } catch (err) {
        if (!isStatus(err, 404)) throw mapDockerError(err, `inspect node ${task.NodeID}`);
        node = removedNode(task.NodeID);
      }
    }
    if (task?.Status.State === 'running' && !this.startedAt.has(task.ID) && task.Status.Timestamp) this.startedAt.set(task.ID, task.Status.Timestamp);
    const remembered = task ? this.startedAt.get(task.ID) : undefined;
    return this.refine(this.exitedHere(serviceState(service, task, node, remembered ? { startedAt: remembered } : undefined), task), task);
  }

  /** This node's engine saw the task's container die before the manager heard of it: the role has ended. */
  private exitedHere(state: ContainerState, task: SwarmTask | null): ContainerState {
    const code = task && state.running ? this.watch.exitOf(task.ID) : undefined;
    if (code === undefined) return state;
    return { ...state, running: false, status: 'exited', exitCode: code };
  }

  /** On this node, the task's container tells exact times and whether the kernel killed it for memory. */
  private async refine(state: ContainerState, task: SwarmTask | null): Promise<ContainerState> {
    const cid = task?.Status.ContainerStatus?.ContainerID;
    if (!cid || !task?.NodeID || task.NodeID !== (await this.localNode().catch(() => ''))) return state;
    try {
      const info = await this.docker.getContainer(cid).inspect();
      state.oomKilled = info.State.OOMKilled;
      if (!info.State.StartedAt.startsWith('0001')) state.startedAt = info.State.StartedAt;
      if (!info.State.Running && !info.State.FinishedAt.startsWith('0001')) state.finishedAt = info.State.FinishedAt;
    } catch {
      // removed meanwhile: the task's account stands
    }
    return state;
  }

  async logs(id: string, tailLines: number): Promise<string> {
    try {
      // Bounded: the manager fetches a service's log from the node its task ran on, which may be down.
      return logText(await this.docker.getService(id).logs({ stdout: true, stderr: true, tail: tailLines, follow: false, abortSignal: AbortSignal.timeout(LOGS_TIMEOUT_MS) } as never));
    } catch (err) {
      throw mapDockerError(err, `read the logs of service ${id}`);
    }
  }

  async listManaged(): Promise<ManagedObjects> {
    const [services, tasks, nodes] = await Promise.all([this.listServices(false), this.listTasks(false), this.listNodes()]);
    this.watch.observe({ services, tasks, nodes });
    const views = new Map(nodes.map((n) => [n.ID, nodeView(n)]));
    const tasksOf = groupBy(tasks, (t) => t.ServiceID);
    const containers = services.map((s) => {
      const task = latestTask(tasksOf.get(s.ID) ?? []);
      return this.exitedHere(serviceState(s, task, task?.NodeID ? (views.get(task.NodeID) ?? removedNode(task.NodeID)) : null), task);
    });
    return { containers, networks: await this.networks.listManaged() };
  }

  events(options: { since?: number; signal: AbortSignal }): AsyncIterable<RuntimeEvent> {
    return this.watch.events(options);
  }

  /** Read from the node's engine: only tasks on the manager's own node have stats here. */
  async stats(id: string): Promise<ContainerUsage> {
    const task = latestTask(await this.listTasks(false, id));
    const cid = task?.Status.ContainerStatus?.ContainerID;
    if (!task || !cid || task.Status.State !== 'running') throw new EdgeechoError('NOT_FOUND', `service ${id.slice(0, 12)} has no running task to read stats of`, { container: id });
    if (task.NodeID !== (await this.localNode())) {
      throw new EdgeechoError('RUNTIME_UNAVAILABLE', `stats of service ${id.slice(0, 12)}: its task runs on another node, whose engine this manager does not read`, { container: id, node: task.NodeID });
    }
    return containerUsage(this.docker, cid, `service ${id}`);
  }

  close(): void {
    this.watch.close();
  }

  private localNode(): Promise<string> {
    this.selfNode ??= this.swarmInfo().then(
      (info) => info.nodeId,
      (err) => {
        this.selfNode = null;
        throw err;
      },
    );
    return this.selfNode;
  }

  private async listing(): Promise<SwarmListing> {
    const [services, tasks, nodes] = await Promise.all([this.listServices(false), this.listTasks(false), this.listNodes()]);
    return { services, tasks, nodes };
  }

  private async inspectService(id: string): Promise<SwarmService> {
    try {
      return (await this.docker.getService(id).inspect()) as SwarmService;
    } catch (err) {
      throw mapDockerError(err, `inspect service ${id}`);
    }
  }

  /** Labelled services, or every service (`all`, for the room other services take on nodes). */
  private async listServices(all: boolean): Promise<SwarmService[]> {
    try {
      return (await this.docker.listServices(all ? {} : { filters: { label: [`${LABEL_MANAGED}=true`] } })) as unknown as SwarmService[];
    } catch (err) {
      throw mapDockerError(err, 'list services');
    }
  }

  /** Tasks of labelled services (of one service with `service`), or every task with `all`. */
  private async listTasks(all: boolean, service?: string): Promise<SwarmTask[]> {
    const filters: Record<string, string[]> = service ? { service: [service] } : all ? {} : { label: [`${LABEL_MANAGED}=true`] };
    try {
      return (await this.docker.listTasks({ filters })) as SwarmTask[];
    } catch (err) {
      throw mapDockerError(err, service ? `list the tasks of service ${service}` : 'list tasks');
    }
  }

  private async networkListed(id: string): Promise<boolean> {
    const networks = await this.docker.listNetworks({ filters: { id: [id] } }).catch(() => []);
    return networks.some((n) => n.Id === id);
  }

  /** Tasks still known to the manager of the services of one session. */
  private async listTasksOf(session: string): Promise<SwarmTask[]> {
    try {
      return (await this.docker.listTasks({ filters: { label: [`${LABEL_SESSION}=${session}`] } })) as SwarmTask[];
    } catch (err) {
      throw mapDockerError(err, `list the tasks of session ${session}`);
    }
  }

  private async listNodes(): Promise<SwarmNode[]> {
    try {
      return (await this.docker.listNodes()) as SwarmNode[];
    } catch (err) {
      throw mapDockerError(err, 'list nodes');
    }
  }
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k);
    if (list) list.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

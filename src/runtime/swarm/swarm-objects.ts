/**
 * What the Swarm manager answers about services, tasks and nodes, narrowed to what the driver reads, and how a
 * service and its task read as the seam's ContainerState. A role is a service of one replica: its state is its
 * latest task's, except that a task on a node that is down is not running, whatever the manager last heard.
 * Pure, so it is tested without a swarm.
 */
import { LABEL_INSTANCE, LABEL_ROLE, LABEL_SESSION, type ContainerState, type Role } from '../driver.js';

export interface SwarmService {
  ID: string;
  CreatedAt?: string;
  Version?: { Index: number };
  Spec: {
    Name: string;
    Labels?: Record<string, string>;
    Mode?: { Replicated?: { Replicas?: number } };
    TaskTemplate?: {
      Placement?: { Constraints?: string[] };
      Resources?: { Limits?: { NanoCPUs?: number; MemoryBytes?: number }; Reservations?: { NanoCPUs?: number; MemoryBytes?: number } };
      ContainerSpec?: { Image?: string };
    };
  } & Record<string, unknown>;
}

export interface SwarmTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  CreatedAt?: string;
  UpdatedAt?: string;
  Version?: { Index: number };
  DesiredState?: string;
  Labels?: Record<string, string>;
  Spec?: { Resources?: { Reservations?: { NanoCPUs?: number; MemoryBytes?: number } } };
  Status: {
    Timestamp?: string;
    State: string;
    Message?: string;
    Err?: string;
    ContainerStatus?: { ContainerID?: string; ExitCode?: number };
    PortStatus?: { Ports?: Array<{ TargetPort?: number; PublishedPort?: number; PublishMode?: string }> };
  };
  NetworksAttachments?: Array<{ Network?: { ID?: string; Spec?: { Name?: string } }; Addresses?: string[] }>;
}

export interface SwarmNode {
  ID: string;
  Spec: { Labels?: Record<string, string>; Role?: string; Availability?: string };
  Description?: { Hostname?: string; Resources?: { NanoCPUs?: number; MemoryBytes?: number } };
  Status?: { State?: string; Addr?: string; Message?: string };
  ManagerStatus?: { Addr?: string; Leader?: boolean };
}

/** Marks a service the driver stopped: its task ended because it was asked to, not by the swarm's doing. */
export const LABEL_STOPPED = 'io.edgeecho.stopped';
/** Node label naming the address clients reach a node's published ports at (when it is not the node's own). */
export const LABEL_PUBLISH_HOST = 'io.edgeecho.publish-host';

/** States a task does not leave: its container ran and ended, or never ran. */
export const TERMINAL_TASK_STATES = new Set(['complete', 'failed', 'shutdown', 'rejected', 'orphaned', 'remove']);
/** States in which the task's container runs (or is being started, and may already print). */
export const RUNNING_TASK_STATES = new Set(['starting', 'running']);
/** Terminal states in which the task's container never ran, or was lost: the manager's error is the reason. */
const UNRUN_TASK_STATES = new Set(['rejected', 'orphaned']);

/**
 * Node states in which its tasks are lost: `down` (the manager declared it after missed heartbeats) and `removed`
 * (no longer in the swarm). `unknown` (every node, for a moment, after a manager restart or a leader change) and
 * `disconnected` pass by themselves: what the node last reported stands meanwhile.
 */
export const LOST_NODE_STATES = new Set(['down', 'removed']);

/** A task's node, for the states the manager only hears from nodes. */
export interface NodeView {
  hostname: string;
  state: string;
  availability: string;
  address: string;
}

/** The address clients reach the node's published ports at: its publish-host label, else the address it gave the swarm. */
export function nodeAddress(node: SwarmNode): string {
  const label = node.Spec.Labels?.[LABEL_PUBLISH_HOST];
  if (label) return label;
  const addr = node.Status?.Addr;
  // A manager may report 0.0.0.0 (advertised on every address): its manager address names it then.
  if (addr && addr !== '0.0.0.0') return addr;
  return node.ManagerStatus?.Addr?.replace(/:\d+$/, '') ?? '0.0.0.0';
}

/** The view of a node the swarm no longer lists (removed with `docker node rm`). */
export function removedNode(id: string): NodeView {
  return { hostname: id.slice(0, 12), state: 'removed', availability: 'removed', address: '0.0.0.0' };
}

export function nodeView(node: SwarmNode): NodeView {
  return { hostname: node.Description?.Hostname ?? node.ID.slice(0, 12), state: node.Status?.State ?? 'unknown', availability: node.Spec.Availability ?? 'active', address: nodeAddress(node) };
}

/**
 * The task that is the role now: the most recently created (the raft index breaks ties within a millisecond) of
 * those given a node. A replacement the swarm makes for a task it shut down (a drained node) can never be placed
 * (the role is pinned to that node): the task that ran is the role's account.
 */
export function latestTask(tasks: readonly SwarmTask[]): SwarmTask | null {
  const key = (t: SwarmTask): [number, number] => [Date.parse(t.CreatedAt ?? '') || 0, t.Version?.Index ?? 0];
  const placed = tasks.filter((t) => t.NodeID);
  let latest: SwarmTask | null = null;
  for (const t of placed.length ? placed : tasks) {
    if (!latest) latest = t;
    else {
      const [a, b] = [key(t), key(latest)];
      if (a[0] > b[0] || (a[0] === b[0] && a[1] > b[1])) latest = t;
    }
  }
  return latest;
}

/** How the service's role reads through the seam, from its latest task (none yet: created, not started). */
export function serviceState(service: SwarmService, task: SwarmTask | null, node: NodeView | null, remembered?: { startedAt?: string }): ContainerState {
  const labels = service.Spec.Labels ?? {};
  const state: ContainerState = {
    id: service.ID,
    name: service.Spec.Name,
    running: false,
    status: 'created',
    exitCode: null,
    oomKilled: false,
    startedAt: remembered?.startedAt ?? null,
    finishedAt: null,
  };
  if (service.CreatedAt) state.created = service.CreatedAt;
  if (labels[LABEL_ROLE]) state.role = labels[LABEL_ROLE] as Role;
  if (labels[LABEL_SESSION]) state.session = labels[LABEL_SESSION];
  if (labels[LABEL_INSTANCE]) state.instance = labels[LABEL_INSTANCE];
  if (!task) return state;
  const taskState = task.Status.State;
  state.status = taskState;
  const where = node ? `node ${node.hostname}` : `node ${task.NodeID?.slice(0, 12) ?? '(none yet)'}`;
  // The port the node opened (the daemon chose it: the service's spec says it even before the node reports it).
  const specPort = (service.Spec.EndpointSpec as { Ports?: Array<{ PublishedPort?: number }> } | undefined)?.Ports?.find((p) => p.PublishedPort)?.PublishedPort;
  const port = task.Status.PortStatus?.Ports?.find((p) => p.PublishedPort)?.PublishedPort ?? specPort;
  if (port && node && !LOST_NODE_STATES.has(node.state)) state.published = { host: node.address, port };
  if (TERMINAL_TASK_STATES.has(taskState)) {
    state.finishedAt = task.Status.Timestamp ?? null;
    if (UNRUN_TASK_STATES.has(taskState)) {
      state.ended = `was ${taskState} on ${where}: ${task.Status.Err || task.Status.Message || 'no reason given'}`;
    } else {
      // An exit code of 0 may be left out of the task's status (omitempty): a complete task exited 0.
      state.exitCode = task.Status.ContainerStatus?.ExitCode ?? (taskState === 'complete' ? 0 : null);
    }
    // Shut down while the service still wants its replica: the swarm ended it (a drained node), not a stop.
    if (taskState === 'shutdown' && (service.Spec.Mode?.Replicated?.Replicas ?? 0) > 0 && labels[LABEL_STOPPED] !== 'true') {
      state.ended = `was shut down by the swarm on ${where}${node && node.availability !== 'active' ? ` (node availability ${node.availability})` : ''}`;
    }
    return state;
  }
  if (node && LOST_NODE_STATES.has(node.state) && task.NodeID) {
    // The manager cannot hear from the node: its task is lost with it, whatever state was last reported.
    state.status = `node-${node.state}`;
    state.ended = `its ${where} is ${node.state}${task.Status.Err ? ` (${task.Status.Err})` : ''}`;
    return state;
  }
  // The manager hears "running" a moment after the container runs (its ready line may come first): starting counts.
  if (RUNNING_TASK_STATES.has(taskState)) {
    state.running = true;
    if (taskState === 'running') state.startedAt ??= task.Status.Timestamp ?? null;
  }
  const address = task.NetworksAttachments?.find((a) => !/^ingress$/.test(a.Network?.Spec?.Name ?? ''))?.Addresses?.[0];
  if (address) state.address = address.replace(/\/\d+$/, '');
  return state;
}

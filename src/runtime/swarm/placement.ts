/**
 * Where a session runs on a swarm: all its roles on one node (the stream stays local to its upstreams), chosen
 * from the swarm's own node list. A node qualifies when it is ready and active, matches EDGEECHO_SWARM_CONSTRAINTS
 * and has room: its memory (80% of what it reports, as EDGEECHO_CAPACITY_MEMORY's default) and its CPUs times
 * EDGEECHO_SWARM_CPU_RATIO (limits are ceilings, not usage), less what is already placed there: the limits of every
 * edgeecho session's services pinned to it (any instance's), other services' reservations, and placements this
 * daemon made whose services are not listed yet. The least loaded qualifying node wins. Pure, so it is tested
 * without a swarm.
 */
import { EdgeechoError } from '../../../protocol/errors.js';
import { LABEL_MANAGED, LABEL_SESSION, type RuntimeNode } from '../driver.js';
import { pinnedNode } from './service-spec.js';
import { latestTask, nodeAddress, TERMINAL_TASK_STATES, type SwarmNode, type SwarmService, type SwarmTask } from './swarm-objects.js';

export const NODE_MEMORY_SHARE = 0.8;

export interface Demand {
  memoryBytes: number;
  nanoCpus: number;
}

export interface Constraint {
  label: string;
  value: string;
  equal: boolean;
}

/** EDGEECHO_SWARM_CONSTRAINTS: `label=value` or `label!=value` on node labels, comma-separated, all must hold. */
export function parseConstraints(text: string): Constraint[] {
  const list: Constraint[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9._/-]+)\s*(!=|==|=)\s*(.*)$/.exec(part);
    if (!m) throw new EdgeechoError('BAD_REQUEST', `EDGEECHO_SWARM_CONSTRAINTS: expected label=value or label!=value, got "${part}"`);
    list.push({ label: m[1]!, value: m[3]!.trim(), equal: m[2] !== '!=' });
  }
  return list;
}

export function matches(labels: Record<string, string>, constraints: readonly Constraint[]): Constraint | null {
  for (const c of constraints) if ((labels[c.label] === c.value) !== c.equal) return c;
  return null;
}

interface Load extends Demand {
  sessions: Set<string>;
}

/** What is placed on each node now: live edgeecho services by their pin, other services' live tasks, pending placements. */
export function loadsByNode(services: readonly SwarmService[], tasks: readonly SwarmTask[], pending: ReadonlyMap<string, { node: string; demand: Demand }>): Map<string, Load> {
  const loads = new Map<string, Load>();
  const load = (node: string): Load => {
    let l = loads.get(node);
    if (!l) loads.set(node, (l = { memoryBytes: 0, nanoCpus: 0, sessions: new Set() }));
    return l;
  };
  const tasksOf = new Map<string, SwarmTask[]>();
  for (const t of tasks) {
    const list = tasksOf.get(t.ServiceID) ?? [];
    list.push(t);
    tasksOf.set(t.ServiceID, list);
  }
  /** Sessions with a listed service, and those of them with one still live (or not started). */
  const listed = new Set<string>();
  const live = new Set<string>();
  for (const service of services) {
    const labels = service.Spec.Labels ?? {};
    const serviceTasks = tasksOf.get(service.ID) ?? [];
    if (labels[LABEL_MANAGED] === 'true') {
      const session = labels[LABEL_SESSION];
      const latest = latestTask(serviceTasks);
      const ended = latest !== null && TERMINAL_TASK_STATES.has(latest.Status.State);
      if (session) {
        listed.add(session);
        if (!ended) live.add(session);
      }
      if (session && pending.has(session)) continue;
      // Ended roles hold nothing; created ones (no task yet) hold their node already.
      if (ended) continue;
      const node = pinnedNode(service.Spec.TaskTemplate?.Placement?.Constraints) ?? latest?.NodeID;
      if (!node) continue;
      const limits = service.Spec.TaskTemplate?.Resources?.Limits ?? {};
      const l = load(node);
      l.memoryBytes += limits.MemoryBytes ?? 0;
      l.nanoCpus += limits.NanoCPUs ?? 0;
      if (session) l.sessions.add(session);
      continue;
    }
    for (const t of serviceTasks) {
      if (!t.NodeID || TERMINAL_TASK_STATES.has(t.Status.State)) continue;
      const reserved = t.Spec?.Resources?.Reservations ?? service.Spec.TaskTemplate?.Resources?.Reservations ?? {};
      const l = load(t.NodeID);
      l.memoryBytes += reserved.MemoryBytes ?? 0;
      l.nanoCpus += reserved.NanoCPUs ?? 0;
    }
  }
  for (const [session, p] of pending) {
    // Every listed role of it has ended (a failed session kept for debugging): it holds nothing any more.
    if (listed.has(session) && !live.has(session)) continue;
    const l = load(p.node);
    l.memoryBytes += p.demand.memoryBytes;
    l.nanoCpus += p.demand.nanoCpus;
    l.sessions.add(session);
  }
  return loads;
}

/** Every node as `edgeecho resources` shows it, with whether a session may be placed there and why not. */
export function describeNodes(nodes: readonly SwarmNode[], loads: ReadonlyMap<string, Load>, options: { constraints: readonly Constraint[]; cpuRatio: number }): RuntimeNode[] {
  return nodes.map((node) => {
    const load = loads.get(node.ID);
    const state = node.Status?.State ?? 'unknown';
    const availability = node.Spec.Availability ?? 'active';
    const labels = node.Spec.Labels ?? {};
    const resources = node.Description?.Resources ?? {};
    const view: RuntimeNode = {
      id: node.ID,
      hostname: node.Description?.Hostname ?? node.ID.slice(0, 12),
      address: nodeAddress(node),
      role: node.Spec.Role === 'manager' ? 'manager' : 'worker',
      state,
      availability,
      labels,
      capacity: { memoryBytes: Math.floor((resources.MemoryBytes ?? 0) * NODE_MEMORY_SHARE), nanoCpus: (resources.NanoCPUs ?? 0) * options.cpuRatio },
      reserved: { memoryBytes: load?.memoryBytes ?? 0, nanoCpus: load?.nanoCpus ?? 0 },
      sessions: load?.sessions.size ?? 0,
      eligible: true,
    };
    const unmet = matches(labels, options.constraints);
    const why = state !== 'ready' ? `${state}` : availability !== 'active' ? `availability ${availability}` : unmet ? `label ${unmet.label}${unmet.equal ? '' : ' not'} = ${unmet.value} unmet (EDGEECHO_SWARM_CONSTRAINTS)` : null;
    if (why) {
      view.eligible = false;
      view.why = why;
    }
    return view;
  });
}

const MIB = 1024 * 1024;

/** The least loaded eligible node with room for `demand`, or RESOURCE_EXHAUSTED naming the short resource and each node's reason. */
export function choose(nodes: readonly RuntimeNode[], demand: Demand): RuntimeNode {
  const free = (n: RuntimeNode): Demand => ({ memoryBytes: n.capacity.memoryBytes - n.reserved.memoryBytes, nanoCpus: n.capacity.nanoCpus - n.reserved.nanoCpus });
  const eligible = nodes.filter((n) => n.eligible);
  const fits = eligible.filter((n) => free(n).memoryBytes >= demand.memoryBytes && free(n).nanoCpus >= demand.nanoCpus);
  if (fits.length) {
    // Least loaded by its fuller resource, so sessions spread over the nodes.
    const used = (n: RuntimeNode): number => Math.max(n.reserved.memoryBytes / Math.max(1, n.capacity.memoryBytes), n.reserved.nanoCpus / Math.max(1, n.capacity.nanoCpus));
    return fits.reduce((best, n) => (used(n) < used(best) ? n : best));
  }
  const asked = `${Math.round(demand.memoryBytes / MIB)} MiB of memory and ${demand.nanoCpus / 1e9} CPUs of limits`;
  const reasons = nodes.map((n) => {
    if (!n.eligible) return `${n.hostname}: ${n.why}`;
    const f = free(n);
    return `${n.hostname}: ${Math.max(0, Math.round(f.memoryBytes / MIB))} MiB and ${Math.max(0, f.nanoCpus) / 1e9} CPUs free`;
  });
  const memoryShort = eligible.length > 0 && eligible.every((n) => free(n).memoryBytes < demand.memoryBytes);
  const resource = eligible.length === 0 ? 'nodes' : memoryShort ? 'memory' : 'cpus';
  const best = eligible.reduce((m, n) => Math.max(m, resource === 'memory' ? free(n).memoryBytes : free(n).nanoCpus / 1e9), 0);
  return fail(resource, demand, best, eligible.length === 0 ? `no node may take sessions (${reasons.join('; ') || 'the swarm lists none'})` : `no node has room for a session needing ${asked} (${reasons.join('; ')})`);
}

function fail(resource: string, demand: Demand, free: number, message: string): never {
  const asked = resource === 'memory' ? demand.memoryBytes : resource === 'cpus' ? demand.nanoCpus / 1e9 : 1;
  throw new EdgeechoError('RESOURCE_EXHAUSTED', message, { resource, asked, free: Math.max(0, free) });
}

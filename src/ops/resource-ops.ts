/**
 * The `resources` op: the latest sample of the host, the engine and each live session's usage, beside what
 * admission has reserved. Before the first scheduled sample it samples once, so the answer is never empty.
 * The tracker and admission keep TypeScript's camelCase inside; this op is where they meet the wire, so the
 * answer is spelled snake_case like every other frame (protocol/SPEC.md, "Session and resource ops").
 */
import type { OpDefinition } from './contract.js';
import type { RuntimeNode } from '../runtime/driver.js';
import type { Admission, AdmissionState } from '../resources/admission.js';
import type { PoolModeView } from '../sessions/pool.js';
import type { EngineSnapshot, HostSnapshot, ResourceSnapshot, ResourceTracker, SessionUsage } from '../resources/tracker.js';

export interface ResourceOpsDeps {
  tracker: Pick<ResourceTracker, 'latest' | 'sample' | 'sampleFresh'>;
  admission?: Pick<Admission, 'state'>;
  /** This daemon's instance id: the engine counts are split by it. */
  instance?: string;
  /** The warm pools: answered as `pool` (sizes, parked, refilling, hits, misses) when any is configured. */
  pool?: { view(): Record<string, PoolModeView>; has(id: string): boolean };
  /** A runtime with many nodes (swarm): answered as `nodes`, read from the runtime at each request. */
  nodes?: () => Promise<RuntimeNode[]>;
}

export interface NodeWire {
  id: string;
  hostname: string;
  address: string;
  role: string;
  state: string;
  availability: string;
  labels: Record<string, string>;
  capacity_memory_bytes: number;
  capacity_cpus: number;
  reserved_memory_bytes: number;
  reserved_cpus: number;
  sessions: number;
  eligible: boolean;
  why?: string;
}

export function nodeWire(n: RuntimeNode): NodeWire {
  const out: NodeWire = {
    id: n.id,
    hostname: n.hostname,
    address: n.address,
    role: n.role,
    state: n.state,
    availability: n.availability,
    labels: { ...n.labels },
    capacity_memory_bytes: n.capacity.memoryBytes,
    capacity_cpus: n.capacity.nanoCpus / 1e9,
    reserved_memory_bytes: n.reserved.memoryBytes,
    reserved_cpus: n.reserved.nanoCpus / 1e9,
    sessions: n.sessions,
    eligible: n.eligible,
  };
  if (n.why !== undefined) out.why = n.why;
  return out;
}

export interface HostWire {
  cpus: number;
  cpu_percent: number | null;
  memory_total_bytes: number;
  memory_available_bytes: number;
  load: [number, number, number];
  data_dir: string;
  disk_free_bytes: number | null;
  disk_total_bytes: number | null;
}

/** The engine snapshot's keys are single words, already the same on the wire. */
export type EngineWire = EngineSnapshot;

export interface SessionUsageWire {
  session: string;
  containers: number;
  cpu_percent: number;
  memory_bytes: number;
  memory_limit_bytes: number;
}

export interface AdmissionWire {
  sessions: number;
  max_sessions: number;
  reserved_memory_bytes: number;
  capacity_memory_bytes: number;
  reserved_cpus: number;
  capacity_cpus: number;
}

export interface ResourcesResult {
  at: number;
  instance?: string;
  host: HostWire;
  engine: EngineWire;
  sessions: SessionUsageWire[];
  admission?: AdmissionWire;
  pool?: Record<string, PoolModeView>;
  nodes?: NodeWire[];
  nodes_error?: string;
}

function hostWire(h: HostSnapshot): HostWire {
  return {
    cpus: h.cpus,
    cpu_percent: h.cpuPercent,
    memory_total_bytes: h.memoryTotalBytes,
    memory_available_bytes: h.memoryAvailableBytes,
    load: h.load,
    data_dir: h.dataDir,
    disk_free_bytes: h.diskFreeBytes,
    disk_total_bytes: h.diskTotalBytes,
  };
}

function engineWire(e: EngineSnapshot): EngineWire {
  const out: EngineWire = {
    name: e.name,
    reachable: e.reachable,
    running: e.running,
    containers: e.containers,
    networks: e.networks,
    foreign: { ...e.foreign },
    unlabelled: { ...e.unlabelled },
  };
  if (e.error !== undefined) out.error = e.error;
  return out;
}

/** One session's sampled usage as the wire spells it; session.get's `usage` field uses it too. */
export function sessionUsageWire(u: SessionUsage): SessionUsageWire {
  return { session: u.session, containers: u.containers, cpu_percent: u.cpuPercent, memory_bytes: u.memoryBytes, memory_limit_bytes: u.memoryLimitBytes };
}

export function admissionWire(a: AdmissionState): AdmissionWire {
  return {
    sessions: a.sessions,
    max_sessions: a.maxSessions,
    reserved_memory_bytes: a.reservedMemoryBytes,
    capacity_memory_bytes: a.capacityMemoryBytes,
    reserved_cpus: a.reservedCpus,
    capacity_cpus: a.capacityCpus,
  };
}

export function resourcesWire(snapshot: ResourceSnapshot, admission?: AdmissionState, instance?: string): ResourcesResult {
  const out: ResourcesResult = { at: snapshot.at, ...(instance !== undefined ? { instance } : {}), host: hostWire(snapshot.host), engine: engineWire(snapshot.engine), sessions: snapshot.sessions.map(sessionUsageWire) };
  if (admission) out.admission = admissionWire(admission);
  return out;
}

export function resourceOps(deps: ResourceOpsDeps): OpDefinition[] {
  const resources: OpDefinition<{ fresh?: boolean }> = {
    name: 'resources',
    summary: 'host CPU, memory, load and disk, engine objects, per-session usage, admission reservations and (swarm) nodes',
    args: { fresh: { type: 'boolean' } },
    async handler(args): Promise<ResourcesResult> {
      const snapshot = args.fresh ? await deps.tracker.sampleFresh() : (deps.tracker.latest() ?? (await deps.tracker.sample()));
      const out = resourcesWire(snapshot, deps.admission?.state(), deps.instance);
      // Parked sessions are counted under `pool`, not listed as sessions: clients never see their ids.
      if (deps.pool) out.sessions = out.sessions.filter((s) => !deps.pool!.has(s.session));
      const pool = deps.pool?.view();
      if (pool && Object.values(pool).some((p) => p.size > 0 || p.parked > 0)) out.pool = pool;
      if (deps.nodes) {
        try {
          out.nodes = (await deps.nodes()).map(nodeWire);
        } catch (err) {
          out.nodes_error = (err as Error).message;
        }
      }
      return out;
    },
  };
  return [resources as OpDefinition];
}

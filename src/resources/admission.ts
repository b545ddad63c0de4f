/**
 * Admission control: each live session reserves the limits of its containers (the role limits from config),
 * and a new session is refused with RESOURCE_EXHAUSTED when its reservation would push the sum past the
 * configured capacity, when the host is already short of memory, or when EDGEECHO_MAX_SESSIONS are live.
 * Reservations are ceilings, not usage: that is why the CPU capacity defaults to several times the cores.
 */
import { EdgeechoError } from '../../protocol/errors.js';
import type { Config, RoleLimits } from '../config.js';
import type { Role } from '../runtime/driver.js';

export interface AdmissionOptions {
  capacityMemory: number;
  /** CPUs, as EDGEECHO_CAPACITY_CPUS gives them. */
  capacityCpus: number;
  minFreeMemory: number;
  maxSessions: number;
  limits: Record<Role, RoleLimits>;
  /** Host available memory now (bytes), or null when not sampled yet (the check is skipped then). */
  availableMemory: () => number | null;
}

export function admissionOptions(config: Config, availableMemory: () => number | null): AdmissionOptions {
  return {
    capacityMemory: config.capacityMemory,
    capacityCpus: config.capacityCpus,
    minFreeMemory: config.minFreeMemory,
    maxSessions: config.maxSessions,
    limits: { probe: config.limitsProbe, stream: config.limitsStream, segmentation: config.limitsSegmentation },
    availableMemory,
  };
}

export interface Reservation {
  readonly session: string;
  readonly memoryBytes: number;
  readonly nanoCpus: number;
  /** Gives the reservation back; calling it again does nothing. */
  release(): void;
}

export interface AdmissionState {
  sessions: number;
  maxSessions: number;
  reservedMemoryBytes: number;
  capacityMemoryBytes: number;
  reservedCpus: number;
  capacityCpus: number;
}

export class Admission {
  private readonly held = new Map<string, { memoryBytes: number; nanoCpus: number }>();
  private memoryBytes = 0;
  private nanoCpus = 0;

  constructor(private readonly options: AdmissionOptions) {}

  /** What the given roles would reserve. */
  cost(roles: readonly Role[]): { memoryBytes: number; nanoCpus: number } {
    let memoryBytes = 0;
    let nanoCpus = 0;
    for (const role of roles) {
      memoryBytes += this.options.limits[role].memoryBytes;
      nanoCpus += this.options.limits[role].nanoCpus;
    }
    return { memoryBytes, nanoCpus };
  }

  /** Reserves for a new session or throws RESOURCE_EXHAUSTED with {resource, asked, free}. */
  admit(session: string, roles: readonly Role[]): Reservation {
    if (this.held.has(session)) {
      throw new EdgeechoError('CONFLICT', `session ${session} already holds a reservation; expected one admission per session`, { session });
    }
    const o = this.options;
    const cost = this.cost(roles);
    if (this.held.size >= o.maxSessions) {
      throw exhausted('sessions', 1, 0, `${this.held.size} live sessions reach max_sessions ${o.maxSessions} (EDGEECHO_MAX_SESSIONS)`);
    }
    const freeMemory = o.capacityMemory - this.memoryBytes;
    if (cost.memoryBytes > freeMemory) {
      throw exhausted(
        'memory',
        cost.memoryBytes,
        Math.max(0, freeMemory),
        `session needs ${cost.memoryBytes} bytes of memory limits but only ${Math.max(0, freeMemory)} of capacity ${o.capacityMemory} are unreserved (EDGEECHO_CAPACITY_MEMORY)`,
      );
    }
    const freeNano = o.capacityCpus * 1e9 - this.nanoCpus;
    if (cost.nanoCpus > freeNano) {
      const asked = cost.nanoCpus / 1e9;
      const free = Math.max(0, freeNano) / 1e9;
      throw exhausted('cpus', asked, free, `session needs ${asked} CPUs of limits but only ${free} of capacity ${o.capacityCpus} are unreserved (EDGEECHO_CAPACITY_CPUS)`);
    }
    const available = o.availableMemory();
    if (available !== null && available < o.minFreeMemory) {
      throw exhausted(
        'host_memory',
        cost.memoryBytes,
        available,
        `host has ${available} bytes of memory available, below min_free_memory ${o.minFreeMemory} (EDGEECHO_MIN_FREE_MEMORY)`,
        { min_free: o.minFreeMemory },
      );
    }
    return this.hold(session, cost);
  }

  /**
   * Re-reserves for a session adopted at start. It runs already, so it is never refused, even when the
   * capacity was lowered meanwhile; new sessions are refused until enough of them end.
   */
  adopt(session: string, roles: readonly Role[]): Reservation {
    this.release(session);
    return this.hold(session, this.cost(roles));
  }

  release(session: string): void {
    const h = this.held.get(session);
    if (!h) return;
    this.held.delete(session);
    this.memoryBytes -= h.memoryBytes;
    this.nanoCpus -= h.nanoCpus;
  }

  /** Releases every reservation whose session is not in `live`: the sweep's guard against a missed release. */
  retain(live: ReadonlySet<string>): string[] {
    const released = [...this.held.keys()].filter((s) => !live.has(s));
    for (const s of released) this.release(s);
    return released;
  }

  has(session: string): boolean {
    return this.held.has(session);
  }

  state(): AdmissionState {
    return {
      sessions: this.held.size,
      maxSessions: this.options.maxSessions,
      reservedMemoryBytes: this.memoryBytes,
      capacityMemoryBytes: this.options.capacityMemory,
      reservedCpus: this.nanoCpus / 1e9,
      capacityCpus: this.options.capacityCpus,
    };
  }

  private hold(session: string, cost: { memoryBytes: number; nanoCpus: number }): Reservation {
    const entry = { ...cost };
    this.held.set(session, entry);
    this.memoryBytes += cost.memoryBytes;
    this.nanoCpus += cost.nanoCpus;
    return {
      session,
      ...cost,
      // Only this reservation's own entry is released: a later adopt() for the same id must survive a stale handle.
      release: () => {
        if (this.held.get(session) === entry) this.release(session);
      },
    };
  }
}

function exhausted(resource: string, asked: number, free: number, message: string, extra: Record<string, unknown> = {}): EdgeechoError {
  return new EdgeechoError('RESOURCE_EXHAUSTED', message, { resource, asked, free, ...extra });
}

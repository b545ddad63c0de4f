/**
 * Host ports for streams published in host mode. The daemon picks the port itself, from EDGEECHO_SWARM_PORTS,
 * rather than letting the node pick one: a node reports a port it picked only once it reports the task running,
 * and a short session's stream can be done before that, leaving no location to give. A port is free on a node when
 * no service pinned there (of any edgeecho instance, or any other service publishing in host mode that may run there)
 * publishes it and this daemon has not just handed it out. Something else on the node listening on the port makes
 * the task fail to start, and the create with it, saying so. Pure but for the in-process reservations.
 */
import { EdgeechoError } from '../../../protocol/errors.js';
import { pinnedNode } from './service-spec.js';
import type { SwarmService } from './swarm-objects.js';

export interface PortRange {
  first: number;
  last: number;
}

/** Below Linux's ephemeral range (32768-60999), where the engine's own dynamic ports come from. */
export const DEFAULT_SWARM_PORTS: PortRange = { first: 30000, last: 32767 };

/** EDGEECHO_SWARM_PORTS: `first-last`, within 1024-65535. */
export function parsePortRange(text: string): PortRange {
  const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(text);
  const first = m ? Number(m[1]) : NaN;
  const last = m ? Number(m[2]) : NaN;
  if (!m || first < 1024 || last > 65535 || first > last) {
    throw new EdgeechoError('BAD_REQUEST', `EDGEECHO_SWARM_PORTS: expected first-last within 1024-65535, e.g. 30000-32767, got "${text}"`);
  }
  return { first, last };
}

/** Host ports published by services that run, or may run, on `node`. */
export function portsInUse(services: readonly SwarmService[], node: string): Set<number> {
  const used = new Set<number>();
  for (const s of services) {
    const pin = pinnedNode(s.Spec.TaskTemplate?.Placement?.Constraints);
    if (pin !== null && pin !== node) continue;
    const ports = (s.Spec.EndpointSpec as { Ports?: Array<{ PublishedPort?: number; PublishMode?: string }> } | undefined)?.Ports ?? [];
    for (const p of ports) if (p.PublishedPort) used.add(p.PublishedPort);
  }
  return used;
}

export class HostPorts {
  /** Ports handed out here whose services may not be listed yet, by node. */
  private readonly held = new Map<string, Map<string, number>>();
  private cursor: number;

  constructor(
    private readonly range: PortRange,
    start = 0,
  ) {
    this.cursor = start % (range.last - range.first + 1);
  }

  /** A port free on `node`, held for `owner` (a service name) until released. */
  take(node: string, owner: string, used: ReadonlySet<number>): number {
    const size = this.range.last - this.range.first + 1;
    const mine = this.held.get(node) ?? new Map<string, number>();
    const taken = new Set(mine.values());
    for (let tried = 0; tried < size; tried++) {
      const port = this.range.first + ((this.cursor + tried) % size);
      if (used.has(port) || taken.has(port)) continue;
      this.cursor = (this.cursor + tried + 1) % size;
      mine.set(owner, port);
      this.held.set(node, mine);
      return port;
    }
    throw new EdgeechoError('RESOURCE_EXHAUSTED', `no free host port left on node ${node.slice(0, 12)} in ${this.range.first}-${this.range.last} (EDGEECHO_SWARM_PORTS)`, {
      resource: 'ports',
      asked: 1,
      free: 0,
    });
  }

  /** Forgets what `owner` held (its service exists now, or never will). */
  release(owner: string): void {
    for (const [node, mine] of this.held) {
      mine.delete(owner);
      if (mine.size === 0) this.held.delete(node);
    }
  }
}

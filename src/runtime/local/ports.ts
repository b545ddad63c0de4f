/**
 * Ports for roles, handed out below the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, usually
 * from 32768). A port between being handed out and the role binding it is free; inside the ephemeral range any
 * outgoing connection on the host (the roles' own, by the hundred under churn) may take it as its source port in
 * that window, and the role exits 2 ("address already in use"): measured once in 701 sessions with kernel-picked
 * ports. Below the range only another listener can, which the bind test at hand-out sees. Ports of live sessions
 * are never handed out twice.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { EdgeechoError } from '../../../protocol/errors.js';

/** Lowest port handed out: above the well-known and common service ports. */
export const DEFAULT_PORT_LOW = 20_000;

/** [low, high] below the ephemeral range; null when the kernel leaves no room below it. */
export function portRange(ephemeral = readEphemeralRange()): [number, number] | null {
  const high = ephemeral[0] - 1;
  return high - DEFAULT_PORT_LOW >= 1000 ? [DEFAULT_PORT_LOW, high] : null;
}

function readEphemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    // not Linux: the defaults below
  }
  return [32_768, 60_999];
}

/** Binds port (0: the kernel picks) on every interface and closes it again; the port, or null when taken. */
export function tryPort(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(null));
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : null;
      server.close(() => resolve(bound));
    });
  });
}

export class PortAllocator {
  private next: number;

  constructor(private readonly range: [number, number] | null = portRange()) {
    // Start anywhere in the range, so two daemons (or a restart) rarely probe the same ports first.
    this.next = range ? range[0] + Math.floor(Math.random() * (range[1] - range[0] + 1)) : 0;
  }

  /** A port free on every interface now and not in `taken` (the ports of live sessions). */
  async allocate(taken: ReadonlySet<number>): Promise<number> {
    if (!this.range) {
      const port = await tryPort(0);
      if (port) return port;
      throw new EdgeechoError('RESOURCE_EXHAUSTED', 'the kernel gave no free port');
    }
    const [low, high] = this.range;
    const size = high - low + 1;
    for (let tried = 0; tried < size; tried++) {
      const port = this.next;
      this.next = port >= high ? low : port + 1;
      if (taken.has(port)) continue;
      if ((await tryPort(port)) !== null) return port;
    }
    throw new EdgeechoError('RESOURCE_EXHAUSTED', `no free port in ${low}..${high} (below the kernel's ephemeral range) for a local role`, { low, high });
  }
}

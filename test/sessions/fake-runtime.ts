/** An in-memory runtime for the reaper, sweep and reconcile unit tests: containers, networks and an event stream the test drives. */
import { EdgeechoError } from '../../protocol/errors.js';
import type { ContainerState, ManagedObjects, Role, RuntimeEvent } from '../../src/runtime/driver.js';
import type { FinishRequest } from '../../src/sessions/reaper.js';
import type { SessionStore } from '../../src/sessions/types.js';

interface Stream {
  queue: RuntimeEvent[];
  wake: (() => void) | null;
  failure: Error | null;
}

export class FakeRuntime {
  readonly name = 'fake';
  containers = new Map<string, ContainerState>();
  networks = new Map<string, { id: string; name: string; session?: string; created: string }>();
  removed: string[] = [];
  subscriptions: Array<{ since?: number }> = [];
  listFails: Error | null = null;
  private streams = new Set<Stream>();
  private subscribedWaiters: Array<() => void> = [];
  private clockNano = 1_000_000_000_000;

  addContainer(session: string | undefined, role: Role, running = true, id = `${session}-${role}`): ContainerState {
    const c: ContainerState = { id, name: `edgeecho-${session}-${role}`, role, running, status: running ? 'running' : 'exited', exitCode: running ? null : 0, oomKilled: false, startedAt: null, finishedAt: null };
    if (session !== undefined) c.session = session;
    this.containers.set(id, c);
    return c;
  }

  addNetwork(session: string | undefined, created = new Date(0).toISOString(), id = `${session}-net`): void {
    this.networks.set(id, { id, name: `edgeecho-${session}-net`, ...(session !== undefined ? { session } : {}), created });
  }

  /** The container exits and a die event is sent to every open stream (unless quiet). */
  exit(id: string, exitCode = 0, quiet = false): void {
    const c = this.containers.get(id)!;
    c.running = false;
    c.status = 'exited';
    c.exitCode = exitCode;
    if (!quiet) this.emit({ type: 'container', action: 'die', id, ...(c.session ? { session: c.session } : {}), ...(c.role ? { role: c.role } : {}), exitCode, timeNano: (this.clockNano += 1_000_000) });
  }

  emit(event: RuntimeEvent): void {
    for (const s of this.streams) {
      s.queue.push(event);
      s.wake?.();
    }
  }

  /** Breaks every open event stream, as a dockerd restart does. */
  breakStreams(message = 'socket hang up'): void {
    for (const s of this.streams) {
      s.failure = new Error(message);
      s.wake?.();
    }
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /** Resolves once `count` subscriptions have been made in total. */
  subscribed(count: number): Promise<void> {
    if (this.subscriptions.length >= count) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.subscriptions.length >= count) resolve();
        else this.subscribedWaiters.push(check);
      };
      this.subscribedWaiters.push(check);
    });
  }

  async *events(options: { since?: number; signal: AbortSignal }): AsyncIterable<RuntimeEvent> {
    const stream: Stream = { queue: [], wake: null, failure: null };
    this.streams.add(stream);
    this.subscriptions.push(options.since !== undefined ? { since: options.since } : {});
    for (const w of this.subscribedWaiters.splice(0)) w();
    const onAbort = (): void => stream.wake?.();
    options.signal.addEventListener('abort', onAbort);
    try {
      while (true) {
        while (stream.queue.length) yield stream.queue.shift()!;
        if (options.signal.aborted) return;
        if (stream.failure) throw stream.failure;
        await new Promise<void>((r) => (stream.wake = r));
        stream.wake = null;
      }
    } finally {
      options.signal.removeEventListener('abort', onAbort);
      this.streams.delete(stream);
    }
  }

  async inspectContainer(id: string): Promise<ContainerState> {
    const c = this.containers.get(id);
    if (!c) throw new EdgeechoError('NOT_FOUND', `inspect container ${id}: no such container`);
    return { ...c };
  }

  async listManaged(): Promise<ManagedObjects> {
    if (this.listFails) throw this.listFails;
    return { containers: [...this.containers.values()].map((c) => ({ ...c })), networks: [...this.networks.values()].map((n) => ({ ...n })) };
  }

  async logs(): Promise<string> {
    return '';
  }

  async stopContainer(id: string): Promise<void> {
    const c = this.containers.get(id);
    if (c?.running) this.exit(id, 143);
  }

  async removeContainer(id: string): Promise<void> {
    if (this.containers.delete(id)) this.removed.push(id);
  }

  async removeNetwork(id: string): Promise<void> {
    const n = this.networks.get(id);
    if (!n) throw new EdgeechoError('NOT_FOUND', `remove network ${id}: no such network`);
    if ([...this.containers.values()].some((c) => c.session === n.session)) throw new EdgeechoError('CONFLICT', `network ${id} has active endpoints`);
    this.networks.delete(id);
    this.removed.push(id);
  }
}

/** A finish that records the call, moves the record to a terminal state and removes the session's objects. */
export function fakeFinish(runtime: FakeRuntime, store: SessionStore) {
  const calls: Array<{ id: string; request: FinishRequest }> = [];
  const fn = async (id: string, request: FinishRequest): Promise<void> => {
    calls.push({ id, request });
    await Promise.resolve();
    for (const c of [...runtime.containers.values()]) if (c.session === id) await runtime.removeContainer(c.id);
    for (const n of [...runtime.networks.values()]) if (n.session === id) await runtime.removeNetwork(n.id);
    const state = request.cause === 'exited' ? 'completed' : request.cause === 'fail' ? 'failed' : 'stopped';
    store.transition(id, state, request.cause === 'exited' ? undefined : request.reason, request.cause === 'fail' ? { error: request.error } : undefined);
  };
  return { fn, calls };
}

/** Creates a ready session record with one container per role (the fake containers must be added separately). */
export function readySession(store: SessionStore, id: string, roles: Role[] = ['probe', 'stream'], createdAt = Date.now()): void {
  store.create({ id, mode: roles.includes('segmentation') ? 'segmented' : 'plain', count: 10, payloadBytes: 64, rate: null }, createdAt);
  for (const role of roles) store.putContainer(id, { id: `${id}-${role}`, name: `edgeecho-${id}-${role}`, role, startedAt: null, finishedAt: null, exitCode: null, stats: null }, createdAt);
  store.transition(id, 'ready', undefined, undefined, createdAt);
}

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Polls a condition on the event loop (no timers); fails after `rounds` turns. */
export async function until(condition: () => boolean, rounds = 200): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (condition()) return;
    await tick();
  }
  throw new Error('condition not met within the bounded number of event-loop turns');
}

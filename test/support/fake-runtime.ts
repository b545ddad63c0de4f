/**
 * The one in-memory runtime for unit tests: a RuntimeDriver whose containers, networks and event stream the test
 * drives. The create path (networks, containers, start, readiness) records its calls, fails on demand and holds
 * ready lines until released; containers added by hand and exits emitted as events serve the reaper, sweep and
 * reconcile tests.
 */
import { EdgeechoError } from '../../protocol/errors.js';
import { LABEL_INSTANCE, type ContainerRef, type ContainerSpec, type ContainerState, type ContainerUsage, type ManagedNetwork, type ManagedObjects, type NetworkRef, type NetworkSpec, type ReadyInfo, type Role, type RuntimeDriver, type RuntimeEvent } from '../../src/runtime/driver.js';
import { outcomeOf, type Finisher, type FinishRequest } from '../../src/sessions/outcome.js';
import { OncePerSession } from '../../src/sessions/once-per-session.js';
import type { SessionStore } from '../../src/sessions/types.js';

interface Stream {
  queue: RuntimeEvent[];
  wake: (() => void) | null;
  failure: Error | null;
}

/** A container as the fake holds it: its state, plus the spec's env, labels and publish when it was created through createContainer. */
export type FakeContainer = ContainerState & { env: Record<string, string>; labels: Record<string, string>; publish?: ContainerSpec['publish'] };

export class FakeRuntime implements RuntimeDriver {
  readonly name = 'fake';
  containers = new Map<string, FakeContainer>();
  networks = new Map<string, ManagedNetwork>();
  removed: string[] = [];
  /** The create path's calls in order, e.g. `createContainer probe`, `waitReady stream`. */
  calls: string[] = [];
  /** `call:role-or-name` -> error, e.g. 'createContainer:stream' */
  failures = new Map<string, Error>();
  /** When set, waitReady waits for this promise (or the signal) before answering. */
  readyGate: Promise<void> | null = null;
  subscriptions: Array<{ since?: number }> = [];
  listFails: Error | null = null;
  private streams = new Set<Stream>();
  private subscribedWaiters: Array<() => void> = [];
  private clockNano = 1_000_000_000_000;
  private next = 1;

  /** `instance`: the io.edgeecho.instance label it carries (none, as made by an edgeecho before instances). */
  addContainer(session: string | undefined, role: Role, running = true, id = `${session}-${role}`, instance?: string): FakeContainer {
    const c: FakeContainer = { id, name: `edgeecho-${session}-${role}`, role, running, status: running ? 'running' : 'exited', exitCode: running ? null : 0, oomKilled: false, startedAt: null, finishedAt: null, env: {}, labels: {} };
    if (session !== undefined) c.session = session;
    if (instance !== undefined) c.instance = c.labels[LABEL_INSTANCE] = instance;
    this.containers.set(id, c);
    return c;
  }

  addNetwork(session: string | undefined, created = new Date(0).toISOString(), id = `${session}-net`, instance?: string): void {
    this.networks.set(id, { id, name: `edgeecho-${session}-net`, ...(session !== undefined ? { session } : {}), ...(instance !== undefined ? { instance } : {}), created });
  }

  /** The container exits and a die event is sent to every open stream (unless quiet). */
  exit(id: string, exitCode = 0, quiet = false): void {
    const c = this.containers.get(id)!;
    c.running = false;
    c.status = 'exited';
    c.exitCode = exitCode;
    if (!quiet) {
      const labels = { ...(c.session ? { session: c.session } : {}), ...(c.role ? { role: c.role } : {}), ...(c.instance ? { instance: c.instance } : {}) };
      this.emit({ type: 'container', action: 'die', id, ...labels, exitCode, timeNano: (this.clockNano += 1_000_000) });
    }
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

  async ping(): Promise<void> {}

  async createNetwork(spec: NetworkSpec): Promise<NetworkRef> {
    this.calls.push(`createNetwork ${spec.name}`);
    this.maybeFail('createNetwork');
    const id = `net${this.next++}`;
    const instance = spec.labels[LABEL_INSTANCE];
    this.networks.set(id, { id, name: spec.name, session: spec.session, ...(instance ? { instance } : {}), created: new Date().toISOString() });
    return { id, name: spec.name, subnet: '10.0.0.0/28' };
  }

  async createContainer(spec: ContainerSpec): Promise<ContainerRef> {
    this.calls.push(`createContainer ${spec.role}`);
    this.maybeFail(`createContainer:${spec.role}`);
    const id = `c${this.next++}-${spec.role}`;
    const c: FakeContainer = { id, name: spec.name, role: spec.role, session: spec.session, running: false, status: 'created', exitCode: null, oomKilled: false, startedAt: null, finishedAt: null, env: spec.env, labels: spec.labels };
    if (spec.publish) c.publish = spec.publish;
    if (spec.labels[LABEL_INSTANCE]) c.instance = spec.labels[LABEL_INSTANCE];
    this.containers.set(id, c);
    return { id, name: spec.name, role: spec.role };
  }

  async startContainer(id: string): Promise<void> {
    const c = this.get(id);
    this.calls.push(`startContainer ${c.role}`);
    this.maybeFail(`startContainer:${c.role}`);
    c.running = true;
    c.status = 'running';
  }

  async waitReady(id: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ReadyInfo> {
    const c = this.get(id);
    this.calls.push(`waitReady ${c.role}`);
    if (this.readyGate) {
      await new Promise<void>((resolve, reject) => {
        options.signal?.addEventListener('abort', () => reject(new EdgeechoError('CANCELLED', 'cancelled')), { once: true });
        this.readyGate!.then(resolve);
      });
    }
    this.maybeFail(`waitReady:${c.role}`);
    if (c.role === 'probe') return { event: 'ready', role: 'probe', port: 7000, probe_id: c.session, count: Number(c.env.PROBE_COUNT) };
    return { event: 'ready', role: c.role };
  }

  /** A running container is stopped as by SIGTERM (exit 143, with its die event). */
  async stopContainer(id: string): Promise<void> {
    const c = this.containers.get(id);
    this.calls.push(`stopContainer ${c?.role ?? id}`);
    if (c?.running) this.exit(id, 143);
  }

  async removeContainer(id: string): Promise<void> {
    this.calls.push(`removeContainer ${this.containers.get(id)?.role ?? id}`);
    if (this.containers.delete(id)) this.removed.push(id);
  }

  async removeNetwork(id: string): Promise<void> {
    const n = this.networks.get(id);
    this.calls.push(`removeNetwork ${n?.name ?? id}`);
    if (!n) throw new EdgeechoError('NOT_FOUND', `remove network ${id}: no such network`);
    if ([...this.containers.values()].some((c) => c.session === n.session)) throw new EdgeechoError('CONFLICT', `network ${id} has active endpoints`);
    this.networks.delete(id);
    this.removed.push(id);
  }

  async inspectContainer(id: string): Promise<ContainerState> {
    const c = this.containers.get(id);
    if (!c) throw new EdgeechoError('NOT_FOUND', `inspect container ${id}: no such container`);
    const { env: _env, labels: _labels, publish, ...state } = c;
    // As Docker: an exited container no longer shows its published port.
    if (publish && c.running) state.published = { host: publish.hostIp, port: 49153 };
    return state;
  }

  /** Containers made through createContainer print a stats line like the emulators; hand-added ones print nothing. */
  async logs(id: string): Promise<string> {
    const c = this.containers.get(id);
    if (!c?.env.PROBE_COUNT && !c?.labels['io.edgeecho.role']) return '';
    return `{"event":"ready"}\n{"event":"stats","role":"${c.role}","frames":${c.env.PROBE_COUNT ?? 0},"lost":0}\n`;
  }

  async listManaged(): Promise<ManagedObjects> {
    if (this.listFails) throw this.listFails;
    return { containers: await Promise.all([...this.containers.keys()].map((id) => this.inspectContainer(id))), networks: [...this.networks.values()].map((n) => ({ ...n })) };
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

  async stats(): Promise<ContainerUsage> {
    return { cpuPercent: 0, memoryBytes: 0, memoryLimitBytes: 0 };
  }

  private maybeFail(key: string): void {
    const err = this.failures.get(key);
    if (err) throw err;
  }

  private get(id: string): FakeContainer {
    const c = this.containers.get(id);
    if (!c) throw new EdgeechoError('NOT_FOUND', `no container ${id}`);
    return c;
  }
}

/**
 * A Finisher that records each request, moves the record to a terminal state and removes the session's objects,
 * one finish per session at a time; `gate` holds every finish until it resolves.
 */
export function fakeFinisher(runtime: FakeRuntime, store: SessionStore, gate?: Promise<void>): Finisher & { calls: Array<{ id: string; request: FinishRequest }>; idle(): Promise<void> } {
  const calls: Array<{ id: string; request: FinishRequest }> = [];
  const running = new OncePerSession<void>();
  const finishNow = async (id: string, request: FinishRequest): Promise<void> => {
    calls.push({ id, request });
    await (gate ?? Promise.resolve());
    for (const c of [...runtime.containers.values()]) if (c.session === id) await runtime.removeContainer(c.id);
    for (const n of [...runtime.networks.values()]) if (n.session === id) await runtime.removeNetwork(n.id);
    const outcome = outcomeOf(request) ?? { state: 'completed' as const };
    store.transition(id, outcome.state, outcome.reason, outcome.error ? { error: outcome.error } : undefined);
  };
  return {
    calls,
    finish: (id, request) => running.run(id, () => finishNow(id, request)),
    finishing: (id) => running.has(id),
    async idle() {
      while (running.size) await Promise.allSettled(running.pending());
    },
  };
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

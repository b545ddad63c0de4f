/**
 * Runtime events of a swarm. A manager's engine emits no task events, and the containers run on other nodes
 * whose engine events it never sees, so the watch reads the manager's task and node lists every
 * EDGEECHO_SWARM_POLL_MS and turns what changed into the seam's events: a task reaching running is `start`, a
 * task reaching an end state is `die` (with its exit code when its container ran), a live task whose node went
 * down is `die` too (the manager cannot hear from it any more), and a service gone is `destroy`. What the driver
 * itself sees on the way (a task found ended before its service is removed, a service removed) is recorded at
 * once. Events are kept in a bounded journal so a subscriber asking `since` a moment in the past gets them again,
 * as the engine's event stream replays.
 */
import type { Logger } from 'pino';
import { LABEL_INSTANCE, LABEL_ROLE, LABEL_SESSION, type RuntimeEvent } from '../driver.js';
import type { LocalExit } from './local-exits.js';
import { LOST_NODE_STATES, TERMINAL_TASK_STATES, type SwarmNode, type SwarmService, type SwarmTask } from './swarm-objects.js';

export const JOURNAL_EVENTS = 4096;

export interface SwarmListing {
  services: SwarmService[];
  tasks: SwarmTask[];
  nodes: SwarmNode[];
}

interface Seen {
  service: string;
  state: string;
  node?: string;
  /** A `die` was emitted for its end state: it ends once. */
  died: boolean;
  /** A `die` was emitted because its node was lost; cleared if the node comes back, so a later loss is seen again. */
  lost: boolean;
}

/** Removed services remembered so a listing begun before the removal does not bring them back. */
const REMEMBERED_REMOVALS = 1024;

type Listener = { event(e: RuntimeEvent): void; failed(err: Error): void };

export class TaskWatch {
  private readonly journal: RuntimeEvent[] = [];
  private readonly listeners = new Set<Listener>();
  private readonly tasks = new Map<string, Seen>();
  private readonly services = new Map<string, Record<string, string>>();
  private readonly removals = new Set<string>();
  /** Exit codes of task containers this node's engine saw die, by task id (the manager may not know yet). */
  private readonly exits = new Map<string, number | null>();
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private primed = false;
  private closed = false;

  private readonly following = new AbortController();

  constructor(
    private readonly list: () => Promise<SwarmListing>,
    private readonly options: {
      intervalMs: number;
      log: Logger;
      now?: () => number;
      /** Exits on this node as its engine reports them (local-exits.ts): seen before the manager's list says so. */
      local?: (signal: AbortSignal, onExit: (exit: LocalExit) => void) => Promise<void>;
    },
  ) {}

  /** Starts polling (idempotent); it runs until close. */
  start(): void {
    if (this.timer || this.closed) return;
    const tick = (): void => {
      this.timer = setTimeout(() => void this.poll().finally(() => !this.closed && tick()), this.options.intervalMs);
      this.timer.unref();
    };
    void this.poll();
    tick();
    if (this.options.local) void this.followLocal(this.options.local);
  }

  /** The engine's own exits, followed again a second after the stream ends, until close. */
  private async followLocal(local: NonNullable<typeof this.options.local>): Promise<void> {
    const signal = this.following.signal;
    while (!signal.aborted) {
      await local(signal, (exit) => this.localExit(exit)).catch((err: Error) => this.options.log.debug({ err: err.message }, 'following the engine\'s container events failed'));
      if (!signal.aborted) await new Promise((r) => setTimeout(r, 1_000).unref());
    }
  }

  /** The exit code of a task whose container this node's engine saw die (null: no code), or undefined. */
  exitOf(taskId: string): number | null | undefined {
    return this.exits.get(taskId);
  }

  /** A task container on this node died: `die` now, and the manager's later account of it is not a second one. */
  localExit(exit: LocalExit): void {
    if (this.removals.has(exit.service)) return;
    if (!this.services.has(exit.service)) this.services.set(exit.service, exit.labels);
    if (exit.action === 'oom') return this.emit(exit.service, 'oom', exit.timeNano);
    if (exit.task) {
      this.exits.set(exit.task, exit.exitCode ?? null);
      if (this.exits.size > REMEMBERED_REMOVALS) this.exits.delete(this.exits.keys().next().value!);
      const seen = this.tasks.get(exit.task);
      if (seen?.died) return;
      if (seen) seen.died = true;
      else this.tasks.set(exit.task, { service: exit.service, state: 'exited', died: true, lost: false });
    }
    this.emit(exit.service, 'die', exit.timeNano, exit.exitCode !== undefined ? { exitCode: exit.exitCode } : {});
  }

  close(): void {
    this.closed = true;
    this.following.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One look now (joined when one is under way). */
  poll(): Promise<void> {
    this.polling ??= this.list()
      .then((listing) => this.observe(listing))
      .catch((err: Error) => {
        this.options.log.debug({ err: err.message }, 'swarm task listing failed');
        for (const l of this.listeners) l.failed(err);
      })
      .finally(() => (this.polling = null));
    return this.polling;
  }

  /** Diffs a full listing against the last one. */
  observe(listing: SwarmListing): void {
    const nodeLost = new Map<string, string>();
    const listed = new Set<string>();
    for (const node of listing.nodes) {
      const state = node.Status?.State ?? 'unknown';
      listed.add(node.ID);
      if (LOST_NODE_STATES.has(state)) nodeLost.set(node.ID, `${node.Description?.Hostname ?? node.ID.slice(0, 12)} is ${state}`);
    }
    // A task's node the swarm no longer lists was removed (`docker node rm`): its tasks are lost with it.
    for (const t of listing.tasks) if (t.NodeID && !listed.has(t.NodeID)) nodeLost.set(t.NodeID, `${t.NodeID.slice(0, 12)} was removed from the swarm`);
    const present = new Set<string>();
    for (const service of listing.services) {
      if (this.removals.has(service.ID)) continue;
      present.add(service.ID);
      this.services.set(service.ID, service.Spec.Labels ?? {});
    }
    this.observeTasks(
      listing.tasks.filter((t) => !this.removals.has(t.ServiceID)),
      nodeLost,
    );
    for (const id of [...this.services.keys()]) if (!present.has(id)) this.removed(id);
    this.primed = true;
  }

  /** Diffs tasks (of one service or all); nodeLost names nodes that are not ready, by id. */
  observeTasks(tasks: readonly SwarmTask[], nodeLost: ReadonlyMap<string, string> = new Map()): void {
    for (const task of tasks) {
      const seen = this.tasks.get(task.ID);
      const state = task.Status.State;
      const ended = TERMINAL_TASK_STATES.has(state);
      const at = this.timeNano(task.Status.Timestamp);
      if (!seen) {
        const entry: Seen = { service: task.ServiceID, state, died: false, lost: false, ...(task.NodeID ? { node: task.NodeID } : {}) };
        this.tasks.set(task.ID, entry);
        // Before the first full look, ends are history: journalled with their own time, so `since` replays them.
        if (ended) this.die(task, entry, at);
        else if (state === 'running' && this.primed) this.emit(task.ServiceID, 'start', at);
      } else if (seen.state !== state) {
        seen.state = state;
        if (task.NodeID) seen.node = task.NodeID;
        if (ended) this.die(task, seen, at);
        else if (state === 'running') this.emit(task.ServiceID, 'start', at);
      }
      const entry = this.tasks.get(task.ID)!;
      const lost = task.NodeID ? nodeLost.get(task.NodeID) : undefined;
      if (lost && !ended && !entry.died && !entry.lost) {
        entry.lost = true;
        this.emit(task.ServiceID, 'die', this.now());
      } else if (!lost) entry.lost = false;
    }
  }

  /** A service is gone (removed by the driver or seen missing): `destroy`, and its tasks forgotten. */
  removed(serviceId: string): void {
    this.removals.add(serviceId);
    if (this.removals.size > REMEMBERED_REMOVALS) this.removals.delete(this.removals.values().next().value!);
    if (!this.services.has(serviceId)) return;
    this.emit(serviceId, 'destroy', this.now());
    this.services.delete(serviceId);
    for (const [id, seen] of this.tasks) if (seen.service === serviceId) this.tasks.delete(id);
  }

  /** Labels the driver learned when creating a service, before any listing shows it. */
  known(serviceId: string, labels: Record<string, string>): void {
    this.services.set(serviceId, labels);
  }

  async *events(options: { since?: number; signal: AbortSignal }): AsyncGenerator<RuntimeEvent> {
    const queue: RuntimeEvent[] = [];
    let failure: Error | null = null;
    let wake: (() => void) | null = null;
    const notify = (): void => {
      const w = wake;
      wake = null;
      w?.();
    };
    const listener: Listener = {
      event: (e) => (queue.push(e), notify()),
      failed: (err) => ((failure = err), notify()),
    };
    if (options.since !== undefined) {
      const from = options.since * 1e9;
      for (const e of this.journal) if (e.timeNano >= from) queue.push(e);
    }
    this.listeners.add(listener);
    options.signal.addEventListener('abort', notify, { once: true });
    this.start();
    try {
      while (!options.signal.aborted) {
        while (queue.length) yield queue.shift()!;
        if (failure) throw failure;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      this.listeners.delete(listener);
      options.signal.removeEventListener('abort', notify);
    }
  }

  private die(task: SwarmTask, seen: Seen, at: number): void {
    if (seen.died) return;
    seen.died = true;
    const code = task.Status.ContainerStatus?.ExitCode ?? (task.Status.State === 'complete' ? 0 : undefined);
    const ran = task.Status.State !== 'rejected' && task.Status.State !== 'orphaned';
    this.emit(task.ServiceID, 'die', at, ran && typeof code === 'number' ? { exitCode: code } : {});
  }

  private emit(serviceId: string, action: string, timeNano: number, extra: { exitCode?: number } = {}): void {
    const labels = this.services.get(serviceId) ?? {};
    const event: RuntimeEvent = { type: 'container', action, id: serviceId, timeNano };
    if (labels[LABEL_SESSION]) event.session = labels[LABEL_SESSION];
    if (labels[LABEL_ROLE]) event.role = labels[LABEL_ROLE];
    if (labels[LABEL_INSTANCE]) event.instance = labels[LABEL_INSTANCE];
    if (extra.exitCode !== undefined) event.exitCode = extra.exitCode;
    this.journal.push(event);
    if (this.journal.length > JOURNAL_EVENTS) this.journal.splice(0, this.journal.length - JOURNAL_EVENTS);
    for (const l of this.listeners) l.event(event);
  }

  private now(): number {
    return (this.options.now?.() ?? Date.now()) * 1e6;
  }

  private timeNano(timestamp: string | undefined): number {
    const ms = timestamp ? Date.parse(timestamp) : NaN;
    return Number.isFinite(ms) ? ms * 1e6 : this.now();
  }
}

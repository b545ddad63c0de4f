/**
 * The reaper detects a ready session whose last container exited and hands it to the lifecycle to finish. It
 * follows the runtime's labelled events (die, oom, destroy); when the stream breaks or the engine restarts it
 * reconnects with backoff, asks for the events since the last one it saw, and re-checks every ready session, because an engine that restarted
 * has forgotten the events from before (its event buffer lives in memory). The sweep is the safety net behind it.
 */
import type { Logger } from 'pino';
import type { RuntimeDriver, RuntimeEvent } from '../runtime/driver.js';
import type { SessionBus } from './events.js';
import type { Finisher } from './outcome.js';
import type { ParkedView } from './parked-store.js';
import type { SessionRecord, SessionStore } from './types.js';

export const DEFAULT_BACKOFF_INITIAL_MS = 100;
export const DEFAULT_BACKOFF_MAX_MS = 5_000;
/** Events are asked for from this far before the last one seen: engine timestamps have whole-second `since`. */
export const CATCH_UP_OVERLAP_S = 1;

const EXIT_ACTIONS = new Set(['die', 'oom', 'destroy']);

/** True when the container is no longer running; one that is gone from the engine counts as exited. */
export async function containerExited(driver: Pick<RuntimeDriver, 'inspectContainer'>, id: string): Promise<boolean> {
  try {
    return !(await driver.inspectContainer(id)).running;
  } catch (err) {
    if ((err as { code?: string }).code === 'NOT_FOUND') return true;
    throw err;
  }
}

export interface ReaperOptions {
  driver: Pick<RuntimeDriver, 'events' | 'inspectContainer'>;
  store: Pick<SessionStore, 'get' | 'list'>;
  finisher: Finisher;
  log: Logger;
  /** Session updates: a session turning ready is checked again if its containers were seen exiting during create. */
  bus?: Pick<SessionBus, 'subscribe'>;
  /** Parked sessions (warm pools): their exits go to the pool, not to finish. */
  parked?: ParkedView;
  backoff?: { initialMs: number; maxMs: number };
  /** Resolves after ms, or early when the signal aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Engine time, seconds since the epoch, for the first subscription's `since`. */
  nowS?: () => number;
  /** Monotonic enough ms clock for judging how long a stream stayed up. */
  nowMs?: () => number;
}

export interface ReaperStats {
  events: number;
  connects: number;
  streamErrors: number;
  finished: number;
  lastEventNano: number | null;
}

const defaultSleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export class Reaper {
  readonly stats: ReaperStats = { events: 0, connects: 0, streamErrors: 0, finished: 0, lastEventNano: null };
  private readonly controller = new AbortController();
  private loop: Promise<void> | null = null;
  /** Per-session check in flight, and whether another event asked for a re-check meanwhile. */
  private readonly checks = new Map<string, { again: boolean; done: Promise<void> }>();
  /** Containers seen dying, per session: saves inspecting them again (inspect is slow while the engine cleans up). */
  private readonly exited = new Map<string, Set<string>>();
  private readonly listeners = new Set<(e: { type: 'connected' | 'stream-error'; error?: Error }) => void>();
  private unsubscribeBus: (() => void) | null = null;

  constructor(private readonly options: ReaperOptions) {
  }

  start(): void {
    // No event may follow exits seen while the session was still creating: its turning ready is the cue.
    this.unsubscribeBus ??=
      this.options.bus?.subscribe(null, (update) => {
        if (update.state === 'ready' && update.record && this.exited.has(update.id)) {
          this.check(update.id).catch((err: Error) => this.options.log.warn({ session: update.id, err: err.message }, 'reaper check failed'));
        }
      }) ?? null;
    this.loop ??= this.follow();
  }

  /** Stops following events; sessions keep running. */
  async stop(): Promise<void> {
    this.unsubscribeBus?.();
    this.controller.abort();
    await this.loop;
    await Promise.allSettled([...this.checks.values()].map((c) => c.done));
  }

  /** Observes (re)connections and stream failures (tests, the bench). Returns the unsubscribe. */
  onStream(listener: (e: { type: 'connected' | 'stream-error'; error?: Error }) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Sessions the reaper holds bookkeeping for (exits seen, checks running): 0 when idle, or it leaks. */
  get trackedSessions(): number {
    return new Set([...this.exited.keys(), ...this.checks.keys()]).size;
  }

  /** Finishes the session if it is ready and none of its containers runs; coalesces concurrent asks. */
  check(id: string): Promise<void> {
    const existing = this.checks.get(id);
    if (existing) {
      existing.again = true;
      return existing.done;
    }
    const entry = { again: false, done: Promise.resolve() };
    entry.done = (async () => {
      try {
        do {
          entry.again = false;
          await this.checkOnce(id);
        } while (entry.again);
      } finally {
        this.checks.delete(id);
      }
    })();
    this.checks.set(id, entry);
    return entry.done;
  }

  /** Checks every ready session (after a reconnect, since events may be lost). */
  async checkAll(): Promise<void> {
    const ready = this.options.store.list({ states: ['ready'] });
    await Promise.all(ready.map((r) => this.check(r.id).catch((err: Error) => this.options.log.warn({ session: r.id, err: err.message }, 'reaper check failed'))));
  }

  private async checkOnce(id: string): Promise<void> {
    const record = this.options.store.get(id);
    if (!record || !shouldReap(record)) {
      // Kept while creating, for the check when it turns ready; its rollback's destroy events clear it otherwise.
      if (record?.state !== 'creating') this.exited.delete(id);
      return;
    }
    if (this.options.finisher.finishing(id)) {
      // The finish removes the containers, whose destroy events land here meanwhile: drop what they recorded.
      this.exited.delete(id);
      return;
    }
    const { driver } = this.options;
    const known = this.exited.get(id);
    const exited = await Promise.all(record.containers.map((c) => known?.has(c.id) || containerExited(driver, c.id)));
    if (!exited.every(Boolean)) return;
    this.exited.delete(id);
    // Re-read: a stop or the sweep may have moved it while the engine answered.
    const again = this.options.store.get(id);
    if (!again || !shouldReap(again)) return;
    this.options.log.debug({ session: id }, 'all containers exited; finishing session');
    await this.options.finisher.finish(id, { cause: 'exited' });
    this.stats.finished++;
  }

  private emit(e: { type: 'connected' | 'stream-error'; error?: Error }): void {
    for (const l of this.listeners) l(e);
  }

  private async follow(): Promise<void> {
    const { driver, log } = this.options;
    const signal = this.controller.signal;
    const backoff = this.options.backoff ?? { initialMs: DEFAULT_BACKOFF_INITIAL_MS, maxMs: DEFAULT_BACKOFF_MAX_MS };
    const sleep = this.options.sleep ?? defaultSleep;
    const nowS = this.options.nowS ?? (() => Date.now() / 1000);
    const nowMs = this.options.nowMs ?? Date.now;
    let delay = backoff.initialMs;
    let since = nowS() - CATCH_UP_OVERLAP_S;
    while (!signal.aborted) {
      const from = this.stats.lastEventNano !== null ? Math.floor(this.stats.lastEventNano / 1e9) - CATCH_UP_OVERLAP_S : since;
      this.stats.connects++;
      const connectedAt = nowMs();
      // A stream that delivered an event, or stayed up longer than the longest backoff, proves the engine is
      // back; only then does the next failure start from the initial delay again.
      let healthy = false;
      try {
        const events = driver.events({ since: Math.floor(from), signal })[Symbol.asyncIterator]();
        // Sessions whose last exit fell in the gap are caught here; events replayed from `since` repeat some
        // checks, which are idempotent.
        const catchUp = this.checkAll().catch((err: Error) => log.warn({ err: err.message }, 'reaper catch-up failed'));
        this.emit({ type: 'connected' });
        while (true) {
          const next = await events.next();
          if (next.done) break;
          healthy = true;
          this.onEvent(next.value);
        }
        await catchUp;
        if (!signal.aborted) throw new Error('the runtime event stream ended');
      } catch (err) {
        if (signal.aborted) break;
        since = nowS() - CATCH_UP_OVERLAP_S;
        if (nowMs() - connectedAt >= backoff.maxMs) healthy = true;
        this.stats.streamErrors++;
        this.emit({ type: 'stream-error', error: err as Error });
        if (healthy) delay = backoff.initialMs;
        log.warn({ err: (err as Error).message, retryMs: delay }, 'runtime event stream broke; reconnecting');
        await sleep(delay, signal);
        delay = Math.min(backoff.maxMs, delay * 2);
      }
    }
  }

  private onEvent(event: RuntimeEvent): void {
    this.stats.events++;
    if (this.stats.lastEventNano === null || event.timeNano > this.stats.lastEventNano) this.stats.lastEventNano = event.timeNano;
    if (event.type !== 'container' || !event.session || !EXIT_ACTIONS.has(event.action)) return;
    if (this.options.parked?.has(event.session)) {
      if (event.action !== 'oom') this.options.parked.exited(event.session, `parked container ${event.id.slice(0, 12)} ${event.action === 'destroy' ? 'was removed' : 'exited'}`);
      return;
    }
    if (event.action !== 'oom') {
      let set = this.exited.get(event.session);
      if (!set) this.exited.set(event.session, (set = new Set()));
      set.add(event.id);
    }
    this.check(event.session).catch((err: Error) => this.options.log.warn({ session: event.session, err: err.message }, 'reaper check failed'));
  }
}

/** Only ready sessions are reaped: during create the workflow owns exits (the probe ends by design), and a stop drives its own teardown. */
function shouldReap(record: SessionRecord): boolean {
  return record.state === 'ready' && record.containers.length > 0;
}

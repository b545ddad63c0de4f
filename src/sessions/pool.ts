/**
 * The warm pools' policy: how many parked sessions of each mode to keep (EDGEECHO_POOL_PLAIN/_SEGMENTED), when to
 * refill (a claim, a discard, a session ending: never by polling), with how many parks at once
 * (EDGEECHO_POOL_REFILL_CONCURRENCY), when to recycle (EDGEECHO_POOL_MAX_AGE_S) and what to give up when a cold
 * create needs room. It acts only through the lifecycle's Parking (park, discard); it holds no objects itself.
 */
import type { Logger } from 'pino';
import { EdgeechoError } from '../../protocol/errors.js';
import type { SessionMode } from '../workflow/session-spec.js';
import type { ParkedEntry, ParkedView } from './parked-store.js';
import type { Parking, ParkedReconcileReport } from './parking.js';
import type { ManagedObjects } from '../runtime/driver.js';
import { newSessionId } from './session-id.js';

export const MODES: readonly SessionMode[] = ['plain', 'segmented'];
/** After a failed park the next try waits this long, doubling up to the max (the engine may be down). */
export const DEFAULT_RETRY_INITIAL_MS = 1_000;
export const DEFAULT_RETRY_MAX_MS = 30_000;
/**
 * Refills, and the engine work handed to `afterClaims`, wait while claims are running, at most this long: a park is
 * a `docker start` per container (runc, CPU-bound), and on a small host it would take the CPU the claims of a burst
 * need to turn ready.
 */
export const DEFAULT_REFILL_DEFER_MS = 1_000;

export interface PoolSettings {
  poolPlain: number;
  poolSegmented: number;
  poolMaxAgeS: number;
  poolRefillConcurrency: number;
}

export interface PoolModeView {
  /** Parked sessions wanted (the setting). */
  size: number;
  parked: number;
  refilling: number;
  hits: number;
  misses: number;
  /** Parked sessions discarded: a container died, too old, evicted for room, surplus after a restart. */
  recycled: number;
  /** Parks that failed (admission refused, engine error). */
  failed: number;
  /** Set when the images cannot park: the pool of this mode stays empty and creates go cold. */
  error?: string;
}

export interface PoolTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: PoolTimers = { setTimeout: (fn, ms) => setTimeout(fn, ms).unref(), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };

interface ModeState {
  size: number;
  /** Parked and claimable, oldest first. */
  available: ParkedEntry[];
  refilling: number;
  hits: number;
  misses: number;
  recycled: number;
  failed: number;
  error: string | null;
}

export class SessionPool implements ParkedView {
  private readonly modes = new Map<SessionMode, ModeState>();
  /** Parks under way, each settling once its park succeeded or was rolled back. */
  private readonly parks = new Map<AbortController, Promise<void>>();
  /** Parks cancelled to give their room to a session: they wait for room, not for the retry timer. */
  private readonly yielded = new WeakSet<AbortController>();
  /** Ids of parks under way, until their entry is claimable: a row the pool must not treat as a leftover. */
  private readonly pending = new Set<string>();
  private readonly recycleTimers = new Map<string, unknown>();
  private retryTimer: unknown = null;
  /** Claims taken and not yet ready or failed; refills wait for them (see DEFAULT_REFILL_DEFER_MS). */
  private claiming = 0;
  /** Since when refills have waited for claims (null: none waits); past the limit they go ahead. */
  private deferredSince: number | null = null;
  private deferTimer: unknown = null;
  /** Work waiting for the claims to end (see afterClaims). */
  private waiting: Array<() => void> = [];
  private retryMs = DEFAULT_RETRY_INITIAL_MS;
  private stopped = false;
  private readonly timers: PoolTimers;
  private readonly now: () => number;

  constructor(
    private readonly parking: Parking,
    private readonly settings: PoolSettings,
    private readonly log: Logger,
    options: { timers?: PoolTimers; now?: () => number } = {},
  ) {
    this.timers = options.timers ?? realTimers;
    this.now = options.now ?? Date.now;
    for (const mode of MODES) {
      const size = mode === 'plain' ? settings.poolPlain : settings.poolSegmented;
      this.modes.set(mode, { size, available: [], refilling: 0, hits: 0, misses: 0, recycled: 0, failed: 0, error: null });
    }
    if (!parking.supported && (settings.poolPlain || settings.poolSegmented)) {
      for (const state of this.modes.values()) if (state.size) state.error = 'this runtime cannot park containers; creates go cold';
    }
  }

  /** True when a pool of this mode is configured (a create then reports pool hit or miss). */
  enabled(mode: SessionMode): boolean {
    return this.mode(mode).size > 0;
  }

  /** Takes the oldest parked session of `mode`, or null (a miss); either way the pool refills behind it. */
  take(mode: SessionMode): ParkedEntry | null {
    const state = this.mode(mode);
    if (state.size === 0) return null;
    const entry = state.available.shift() ?? null;
    if (entry) {
      state.hits++;
      this.claiming++;
      this.cancelRecycle(entry.id);
    } else state.misses++;
    this.refill();
    return entry;
  }

  /** A claim taken from this pool ended (ready or failed): refills deferred for it may run. */
  claimEnded(): void {
    this.claiming = Math.max(0, this.claiming - 1);
    if (this.claiming === 0) this.resume();
  }

  /**
   * Runs `task` once no claim is running (at once when none is), at the latest DEFAULT_REFILL_DEFER_MS after work
   * first waited: engine calls that are not on a claim's path (sampling a ready session's usage) would take the
   * engine's and the host's time from the claims still turning ready in a burst.
   */
  afterClaims(task: () => void): void {
    this.waiting.push(task);
    if (this.stopped || !this.deferred()) this.runWaiting();
  }

  /** afterClaims as a promise. */
  claimsEnded(): Promise<void> {
    return new Promise((resolve) => this.afterClaims(resolve));
  }

  /**
   * Gives up room so a cold create gets it: the session parked longest (any mode: a create of this mode would
   * have claimed one), else a park under way (cancelled and rolled back). Resolves false when there is none.
   */
  async evictForRoom(): Promise<boolean> {
    let oldest: { state: ModeState; entry: ParkedEntry } | null = null;
    for (const state of this.modes.values()) {
      const entry = state.available[0];
      if (entry && (!oldest || entry.createdAt < oldest.entry.createdAt)) oldest = { state, entry };
    }
    if (oldest) {
      this.remove(oldest.state, oldest.entry.id);
      oldest.state.recycled++;
      await this.parking.discard(oldest.entry.id, 'evicted: a session needs its room');
      return true;
    }
    const [controller, settled] = [...this.parks].at(-1) ?? [];
    if (!controller || !settled) return false;
    this.yielded.add(controller);
    controller.abort(new EdgeechoError('CANCELLED', 'park cancelled: a session needs its room'));
    await settled;
    return true;
  }

  /** Reconcile's hand-over at start: adopts what is still parked, then trims to the settings. */
  async adopt(managed: ManagedObjects): Promise<ParkedReconcileReport> {
    const report = await this.parking.reconcile(managed);
    for (const entry of report.adopted) {
      const state = this.mode(entry.mode);
      if (state.available.length >= state.size) {
        // A restart with a smaller pool setting (0 included): the surplus goes.
        await this.parking.discard(entry.id, `pool of ${entry.mode} is set to ${state.size}`).catch((err: Error) => this.log.warn({ session: entry.id, err: err.message }, 'discarding surplus failed'));
        state.recycled++;
        report.discarded.push(entry.id);
        continue;
      }
      state.available.push(entry);
      this.scheduleRecycle(entry);
    }
    report.adopted = report.adopted.filter((e) => !report.discarded.includes(e.id));
    if (report.adopted.length || report.discarded.length) this.log.info({ adopted: report.adopted.length, discarded: report.discarded.length }, 'reconciled parked sessions');
    return report;
  }

  /** A claim cut off by a restart: some container still waits for its parameters (reconcile rolls it back). */
  anyStillParked(containerIds: readonly string[]): Promise<boolean> {
    return this.parking.anyStillParked(containerIds);
  }

  /** Starts filling the pools. */
  start(): void {
    this.refill();
  }

  /** Something released room (a session ended): parks that failed for lack of it may now succeed. */
  roomFreed(): void {
    if (this.retryTimer !== null) {
      this.timers.clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    this.refill();
  }

  /** Fills every pool up to its size with at most EDGEECHO_POOL_REFILL_CONCURRENCY parks at once. */
  refill(): void {
    if (this.stopped || this.retryTimer !== null || this.deferred()) return;
    for (;;) {
      const mode = this.neediest();
      if (!mode || this.parks.size >= this.settings.poolRefillConcurrency) return;
      const controller = new AbortController();
      this.parks.set(controller, this.parkOne(mode, controller));
    }
  }

  // ParkedView: what the reaper, the sweep and reconcile ask about parked objects.
  has(id: string): boolean {
    return this.parking.isParked(id);
  }

  ids(): string[] {
    return this.parking.parkedIds();
  }

  entries(): ParkedEntry[] {
    return this.parking.entries();
  }

  /** A parked container exited or vanished: the parked session is discarded and replaced. */
  exited(id: string, why: string): void {
    for (const state of this.modes.values()) {
      if (!state.available.some((e) => e.id === id)) continue;
      this.remove(state, id);
      state.recycled++;
      this.log.warn({ session: id, why }, 'a parked session broke; replacing it');
      void this.discardAndRefill(id, why);
      return;
    }
    // Not claimable: a park under way fails by itself, a discard is running, or it is a row a failed discard
    // left (retried here).
    if (!this.pending.has(id) && !this.parking.discarding(id) && this.parking.isParked(id)) void this.discardAndRefill(id, why);
  }

  view(): Record<SessionMode, PoolModeView> {
    const out = {} as Record<SessionMode, PoolModeView>;
    for (const [mode, s] of this.modes) {
      out[mode] = { size: s.size, parked: s.available.length, refilling: s.refilling, hits: s.hits, misses: s.misses, recycled: s.recycled, failed: s.failed };
      if (s.error) out[mode].error = s.error;
    }
    return out;
  }

  /**
   * Stops refilling; parks in flight are cancelled (rolled back). Parked sessions stay for the next start to
   * adopt, unless `discard` (EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN).
   */
  async stop(discard: boolean): Promise<void> {
    this.stopped = true;
    // Nothing waits for claims at shutdown: what waited runs now.
    this.runWaiting();
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    if (this.deferTimer !== null) this.timers.clearTimeout(this.deferTimer);
    for (const handle of this.recycleTimers.values()) this.timers.clearTimeout(handle);
    this.recycleTimers.clear();
    for (const controller of this.parks.keys()) controller.abort(new EdgeechoError('SHUTTING_DOWN', 'daemon shutting down while parking'));
    await Promise.allSettled([...this.parks.values()]);
    if (!discard) return;
    const all = [...this.modes.values()].flatMap((s) => s.available.splice(0));
    await Promise.allSettled(all.map((e) => this.parking.discard(e.id, 'daemon shutdown (EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN)')));
  }

  /**
   * True while claims run and deferred work has waited less than DEFAULT_REFILL_DEFER_MS (a timer then resumes
   * it); false once it may go ahead.
   */
  private deferred(): boolean {
    if (this.claiming > 0) {
      this.deferredSince ??= this.now();
      const wait = DEFAULT_REFILL_DEFER_MS - (this.now() - this.deferredSince);
      if (wait > 0) {
        this.deferTimer ??= this.timers.setTimeout(() => {
          this.deferTimer = null;
          this.resume();
        }, wait);
        return true;
      }
    } else this.deferredSince = null;
    if (this.deferTimer !== null) {
      this.timers.clearTimeout(this.deferTimer);
      this.deferTimer = null;
    }
    return false;
  }

  /** The claims ended, or deferred work waited long enough: it runs. */
  private resume(): void {
    if (this.stopped || this.deferred()) return;
    this.runWaiting();
    this.refill();
  }

  private runWaiting(): void {
    const tasks = this.waiting;
    this.waiting = [];
    for (const task of tasks) {
      try {
        task();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'work deferred behind claims failed');
      }
    }
  }

  private mode(mode: SessionMode): ModeState {
    return this.modes.get(mode)!;
  }

  /** The mode furthest below its size (counting parks under way), or null when all are full or broken. */
  private neediest(): SessionMode | null {
    let best: SessionMode | null = null;
    let gap = 0;
    for (const [mode, s] of this.modes) {
      const missing = s.error ? 0 : s.size - s.available.length - s.refilling;
      if (missing > gap) [best, gap] = [mode, missing];
    }
    return best;
  }

  private async parkOne(mode: SessionMode, controller: AbortController): Promise<void> {
    const state = this.mode(mode);
    state.refilling++;
    const began = this.now();
    const id = newSessionId();
    this.pending.add(id);
    try {
      const entry = await this.parking.park(mode, controller.signal, id);
      state.refilling--;
      this.parks.delete(controller);
      this.pending.delete(id);
      if (this.stopped) return;
      state.available.push(entry);
      this.scheduleRecycle(entry);
      this.retryMs = DEFAULT_RETRY_INITIAL_MS;
      this.log.debug({ session: entry.id, mode, ms: this.now() - began }, 'pool refilled');
    } catch (err) {
      state.refilling--;
      this.parks.delete(controller);
      this.pending.delete(id);
      if (this.stopped) return;
      // Gave its room to a session: parking again waits until a session ends.
      if (this.yielded.has(controller)) return;
      state.failed++;
      const error = EdgeechoError.from(err);
      if (error.details?.cannot_park === true) {
        state.error = error.message;
        this.log.error({ mode, err: error.message }, 'emulator images cannot park; this pool stays empty and creates go cold');
      } else if (error.code === 'RESOURCE_EXHAUSTED') {
        // Full: the pool waits for room (roomFreed) rather than retrying on a timer.
        this.log.debug({ mode, err: error.message }, 'no room to park; waiting for a session to end');
        return;
      } else {
        this.log.warn({ mode, err: error.message, retryMs: this.retryMs }, 'parking failed; retrying later');
        this.retryTimer = this.timers.setTimeout(() => {
          this.retryTimer = null;
          this.refill();
        }, this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, DEFAULT_RETRY_MAX_MS);
        return;
      }
    }
    this.refill();
  }

  private scheduleRecycle(entry: ParkedEntry): void {
    const ageMs = this.now() - entry.createdAt;
    const handle = this.timers.setTimeout(() => {
      this.recycleTimers.delete(entry.id);
      const state = this.mode(entry.mode);
      if (!state.available.some((e) => e.id === entry.id)) return;
      this.remove(state, entry.id);
      state.recycled++;
      void this.discardAndRefill(entry.id, `parked longer than ${this.settings.poolMaxAgeS} s (EDGEECHO_POOL_MAX_AGE_S)`);
    }, Math.max(0, this.settings.poolMaxAgeS * 1000 - ageMs));
    this.recycleTimers.set(entry.id, handle);
  }

  private cancelRecycle(id: string): void {
    const handle = this.recycleTimers.get(id);
    if (handle !== undefined) this.timers.clearTimeout(handle);
    this.recycleTimers.delete(id);
  }

  private remove(state: ModeState, id: string): void {
    state.available = state.available.filter((e) => e.id !== id);
    this.cancelRecycle(id);
  }

  private async discardAndRefill(id: string, why: string): Promise<void> {
    await this.parking.discard(id, why).catch((err: Error) => this.log.warn({ session: id, err: err.message }, 'discarding a parked session failed; the sweep retries'));
    this.refill();
  }
}

/**
 * The one owner of a session's life: create (the workflow, the admission reservation, the creates in flight),
 * stop (a create in flight is cancelled and rolled back), finish (reaped, swept, expired, reconciled) behind one
 * finish-once guard, adoption after a restart, and shutdown. The reaper, the sweep and reconcile only detect and
 * hand over through `finish` and `adopt`; every state change of a record happens here or in the teardown it runs.
 */
import type { Logger } from 'pino';
import { EdgeechoError } from '../../protocol/errors.js';
import type { ContainerState, Role, RuntimeDriver } from '../runtime/driver.js';
import type { StepStatus } from '../workflow/engine.js';
import { rolesOf, type SessionMode, type SessionSpec } from '../workflow/session-spec.js';
import { runClaimWorkflow } from '../workflow/parking-workflows.js';
import { runSessionWorkflow, type SessionCreated, type SessionWorkflowConfig, type SessionWorkflowDeps } from '../workflow/session-workflows.js';
import type { SessionBus } from './events.js';
import { outcomeOf, STOPPED_WHILE_CREATING, type Finisher, type FinishRequest, type Outcome } from './outcome.js';
import type { ParkedEntry, ParkedStore } from './parked-store.js';
import { Parking } from './parking.js';
import type { SessionPool } from './pool.js';
import { OncePerSession } from './once-per-session.js';
import { newSessionId } from './session-id.js';
import { tearDown, type TeardownDeps } from './teardown.js';
import { TERMINAL_STATES, type SessionRecord, type SessionStore } from './types.js';
import { watchSession, type WatchOptions } from './watch.js';

export const DEFAULT_PAYLOAD_BYTES = 64;

export interface LifecycleDeps {
  driver: RuntimeDriver;
  store: SessionStore;
  bus: SessionBus;
  /** Admission (resources/admission.ts): admit throws RESOURCE_EXHAUSTED to refuse; adopt never refuses. */
  admission: { admit(session: string, roles: readonly Role[]): unknown; release(session: string): void; adopt(session: string, roles: readonly Role[]): unknown };
  config: SessionWorkflowConfig & { stopTimeoutS: number; keepFailed: boolean; maxPayloadBytes: number };
  log: Logger;
  /** Extra labels on every runtime object (EDGEECHO_OBJECT_LABELS; tests mark theirs). */
  labels?: Record<string, string>;
  startOrder?: SessionWorkflowDeps['startOrder'];
  /** The warm pools' records; absent: no parking (every create is cold). */
  parked?: ParkedStore;
}

export interface CreateRequest {
  mode: SessionMode;
  count: number;
  payloadBytes?: number;
  /** frames per second; 0 or absent: as fast as backpressure allows */
  rate?: number;
}

/** Where a create or stop reports its steps (the op forwards them as status frames). */
export interface Progress {
  status(fields: Record<string, unknown>): void;
}

export interface CreateOptions extends Progress {
  /** Aborts the create (its client cancelled or went away at shutdown): it rolls back. */
  signal: AbortSignal;
  log?: Logger;
}

export interface SessionCreateResult extends SessionCreated {
  id: string;
}

interface CreateInFlight {
  abort: AbortController;
  /** Set by whoever cancels the create: the outcome its rollback records instead of the workflow's error. */
  outcome: Outcome | null;
  /** Resolves once the create has settled and its record says so. */
  settled: Promise<void>;
}

export class SessionLifecycle implements Finisher {
  private readonly creating = new Map<string, CreateInFlight>();
  private readonly finishes = new OncePerSession<SessionRecord>();
  private readonly teardown: TeardownDeps;
  /** Parked sessions' lives (park, discard, claim's records, adoption): owned here, driven by the pool. */
  readonly parking: Parking | null;
  private pool: SessionPool | null = null;

  constructor(private readonly deps: LifecycleDeps) {
    const { driver, store, bus, log, config, admission } = deps;
    this.teardown = { driver, store, bus, log, config, release: (session) => admission.release(session) };
    this.parking = deps.parked ? new Parking({ driver, store, parked: deps.parked, admission, config, log, ...(deps.labels ? { labels: deps.labels } : {}) }) : null;
  }

  /** Creates take parked sessions from this pool when it has one of their mode. */
  usePool(pool: SessionPool): void {
    this.pool = pool;
  }

  /** The record, or NOT_FOUND. */
  get(id: string): SessionRecord {
    const record = this.deps.store.get(id);
    if (!record) throw new EdgeechoError('NOT_FOUND', `session ${id} does not exist (it may have been pruned after EDGEECHO_RETENTION_DAYS)`, { session: id });
    return record;
  }

  /** Follows a session until it ends; see watchSession. */
  watch(id: string, options: WatchOptions): Promise<SessionRecord> {
    return watchSession({ get: (sid) => this.get(sid), bus: this.deps.bus }, id, options);
  }

  async create(request: CreateRequest, options: CreateOptions): Promise<SessionCreateResult> {
    const { store, config, admission } = this.deps;
    const began = performance.now();
    const elapsed = (): number => Math.round(performance.now() - began);
    // Taken before the first frame, so the session's id is the parked one its objects are named for.
    const parked = this.parking ? (this.pool?.take(request.mode) ?? null) : null;
    // The default must not exceed a lowered EDGEECHO_MAX_PAYLOAD_BYTES, or omitting the arg would ask for more than asking may.
    const spec: SessionSpec = {
      id: parked?.id ?? newSessionId(),
      mode: request.mode,
      count: request.count,
      payloadBytes: request.payloadBytes ?? Math.min(DEFAULT_PAYLOAD_BYTES, config.maxPayloadBytes),
      rate: request.rate ? request.rate : null,
    };
    const { id } = spec;
    const log = (options.log ?? this.deps.log).child({ session: id });
    if (parked) this.claimRecords(parked, spec);
    else store.create(spec);
    this.publish(store.get(id)!);
    const pool = parked ? 'hit' : this.pool?.enabled(spec.mode) ? 'miss' : 'off';
    options.status({ session: id, step: 'session', state: 'started', elapsed_ms: 0, details: { mode: spec.mode, roles: rolesOf(spec.mode), pool } });

    let settle = (): void => {};
    const entry: CreateInFlight = { abort: new AbortController(), outcome: null, settled: new Promise((resolve) => (settle = resolve)) };
    this.creating.set(id, entry);
    const signal = AbortSignal.any([options.signal, entry.abort.signal]);
    // The steps running when a cancel (client, stop, TTL) lands: its error names the first, as a step's own failure would.
    const running = new Set<string>();
    let interrupted: string | null = null;
    signal.addEventListener('abort', () => (interrupted ??= running.values().next().value ?? null), { once: true });
    const onStatus = (status: StepStatus): void => {
      if (!status.step.startsWith('rollback:')) {
        if (status.state === 'started') running.add(status.step);
        else running.delete(status.step);
      }
      options.status({ session: id, ...status });
      this.deps.bus.publish({ id, state: 'creating', status: { ...status } });
    };
    const failed = (error: EdgeechoError, outcome: Outcome): EdgeechoError => {
      // Closes the `session` step opened above, so every step a client saw start also ends.
      const took = elapsed();
      options.status({ session: id, step: 'session', state: 'failed', elapsed_ms: took, duration_ms: took, details: { state: outcome.state }, error: error.toWire() });
      log.warn({ err: error.message, code: error.code, state: outcome.state }, 'session create rolled back');
      return error;
    };
    try {
      let created: SessionCreated;
      try {
        const capacity = { reserve: (session: string, roles: readonly Role[]) => this.reserve(session, roles), release: (session: string) => admission.release(session) };
        created = parked
          ? await runClaimWorkflow(spec, Parking.objectsOf(parked), { driver: this.deps.driver, config, capacity, parkedMs: Date.now() - parked.createdAt }, { signal, onStatus })
          : await runSessionWorkflow(
              spec,
              {
                driver: this.deps.driver,
                config,
                capacity,
                ...(this.deps.labels ? { labels: this.deps.labels } : {}),
                ...(this.deps.startOrder ? { startOrder: this.deps.startOrder } : {}),
                onNetwork: (network) => store.update(id, { network }),
                onContainer: (c) => store.putContainer(id, { id: c.id, name: c.name, role: c.role, startedAt: null, finishedAt: null, exitCode: null, stats: null }),
              },
              { signal, onStatus },
            );
      } catch (err) {
        // Rolled back by the workflow; what is recorded is the canceller's outcome (stop, TTL) or the workflow's error.
        const failure = EdgeechoError.from(err);
        const outcome = entry.outcome ?? { state: 'failed', reason: failure.message };
        const error = describeFailure(outcome, failure, interrupted ?? 'session');
        this.publish(store.transition(id, outcome.state, outcome.reason, { error: error.toWire() }));
        throw failed(error, outcome);
      }
      if (entry.outcome) {
        // Cancelled after the last step ended but before the workflow returned: nothing was rolled back, so the
        // cancel's outcome is carried out here, as a finish of the session's objects.
        const outcome = entry.outcome;
        const error = describeFailure(outcome, new EdgeechoError('CANCELLED', 'workflow was cancelled'), interrupted ?? 'session');
        await tearDown(this.teardown, this.get(id), { ...outcome, error: error.toWire() });
        throw failed(error, outcome);
      }
      this.publish(store.transition(id, 'ready', undefined, { network: created.network, location: created.location, probe: created.probe }));
      const result = { id, ...created };
      const took = elapsed();
      try {
        options.status({ session: id, step: 'session', state: 'done', elapsed_ms: took, duration_ms: took, details: { state: 'ready', location: created.location } });
        log.info({ location: created.location }, 'session ready');
      } catch (err) {
        // The session is ready and running: a reporting failure must not make it look failed.
        log.warn({ err: (err as Error).message }, 'reporting a ready session failed');
      }
      return result;
    } finally {
      this.creating.delete(id);
      if (parked) this.pool?.claimEnded();
      settle();
    }
  }

  private claimRecords(parked: ParkedEntry, spec: SessionSpec): void {
    try {
      this.parking!.claimRecords(parked, spec);
    } catch (err) {
      // Taken from the pool but not recorded as a session: it must not stay parked unowned.
      this.pool?.claimEnded();
      void this.parking!.discard(parked.id, 'claim could not be recorded').catch(() => undefined);
      throw err;
    }
  }

  /** Admits a cold create; when refused for room the pool gives up parked sessions first (they yield to sessions). */
  private async reserve(session: string, roles: readonly Role[]): Promise<void> {
    for (;;) {
      try {
        await this.deps.admission.admit(session, roles);
        return;
      } catch (err) {
        if (!(err instanceof EdgeechoError && err.code === 'RESOURCE_EXHAUSTED') || !(await this.pool?.evictForRoom())) throw err;
      }
    }
  }

  /** Stops a session (cancelling its create if one runs) and removes its objects; stopping a finished one only cleans up. */
  async stop(id: string, progress: Progress): Promise<SessionRecord> {
    const began = performance.now();
    const elapsed = (): number => Math.round(performance.now() - began);
    const record = this.get(id);
    if (this.creating.has(id)) {
      progress.status({ session: id, step: 'cancel create', state: 'started', elapsed_ms: 0 });
      await this.finish(id, { cause: 'stop', reason: STOPPED_WHILE_CREATING });
      const took = elapsed();
      progress.status({ session: id, step: 'cancel create', state: 'done', elapsed_ms: took, duration_ms: took });
      return this.get(id);
    }
    const live = !TERMINAL_STATES.includes(record.state);
    if (live && record.state !== 'stopping') this.publish(this.deps.store.transition(id, 'stopping', 'session.stop'));
    progress.status({ session: id, step: 'stop', state: 'started', elapsed_ms: elapsed(), details: { timeout_s: this.deps.config.stopTimeoutS } });
    const started = performance.now();
    const final = await this.finish(id, { cause: 'stop', reason: 'session.stop' });
    progress.status({ session: id, step: 'stop', state: 'done', elapsed_ms: elapsed(), duration_ms: Math.round(performance.now() - started) });
    return final;
  }

  /**
   * Ends a session for the reason given, at most one finish per session at a time (the reaper, the sweep, a stop
   * and reconcile may all find the same session done; the first decides). A create in flight is cancelled and its
   * rollback records the outcome.
   */
  finish(id: string, request: FinishRequest): Promise<SessionRecord> {
    return this.finishes.run(id, () => this.finishNow(id, request));
  }

  finishing(id: string): boolean {
    return this.finishes.has(id);
  }

  /**
   * Takes over a session found running at start: its reservation is restored (never refused: it runs already),
   * and a create cut off after every container started becomes ready with what the runtime shows.
   */
  adopt(record: SessionRecord, containers: readonly ContainerState[], reason?: string): void {
    const { store, admission, log } = this.deps;
    const roles = [...new Set(containers.map((c) => c.role).filter((r): r is Role => r !== undefined))];
    admission.adopt(record.id, roles.length ? roles : rolesOf(record.mode));
    if (record.state === 'creating') {
      const stream = containers.find((c) => c.role === 'stream' && c.published);
      const patch = !record.location && stream?.published ? { location: stream.published } : {};
      for (const c of containers) {
        if (!record.containers.some((k) => k.id === c.id) && c.role) {
          store.putContainer(record.id, { id: c.id, name: c.name, role: c.role, startedAt: c.startedAt, finishedAt: c.finishedAt, exitCode: c.exitCode, stats: null });
        }
      }
      this.publish(store.transition(record.id, 'ready', reason, patch));
    }
    log.info({ session: record.id, containers: containers.length }, 'adopted running session');
  }

  /**
   * At shutdown live sessions keep running for the next start to adopt (like Docker's live restore), unless
   * EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN asks to stop them. Waits for every finish under way. Returns those stopped.
   */
  async shutdown(stopSessions: boolean): Promise<string[]> {
    const live = stopSessions ? this.deps.store.list({ states: ['ready', 'stopping'] }) : [];
    await Promise.allSettled(live.map((r) => this.finish(r.id, { cause: 'stop', reason: 'daemon shutdown (EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN)' })));
    await this.idle();
    if (stopSessions) this.deps.log.info({ stopped: live.length }, 'stopped live sessions on shutdown');
    return live.map((r) => r.id);
  }

  /** Resolves once every finish and create started so far has settled (shutdown, tests). */
  async idle(): Promise<void> {
    while (this.finishes.size || this.creating.size) {
      await Promise.allSettled([...this.finishes.pending(), ...[...this.creating.values()].map((c) => c.settled)]);
    }
  }

  private async finishNow(id: string, request: FinishRequest): Promise<SessionRecord> {
    const create = this.creating.get(id);
    if (create) {
      // The create owns its objects until its rollback ends: cancel it with this outcome and let the rollback record it.
      const outcome = outcomeOf(request) ?? { state: 'failed', reason: 'containers exited during create' };
      create.outcome = outcome;
      create.abort.abort(
        outcome.error ? EdgeechoError.fromWire(outcome.error) : new EdgeechoError('CANCELLED', `session ${id} was ${outcome.state === 'stopped' ? 'stopped' : 'ended'} while creating`),
      );
      await create.settled;
      return this.get(id);
    }
    // A session that ended by itself is only collected and removed: those engine calls (a listing, inspect and logs
    // per container, the removals) wait for the claims under way, which a burst's first sessions ending at once
    // otherwise slowed. At most DEFAULT_REFILL_DEFER_MS; the finish guard holds meanwhile, so nothing else acts on it.
    if (request.cause === 'exited') await this.pool?.claimsEnded();
    return tearDown(this.teardown, this.get(id), outcomeOf(request), { rollback: request.cause === 'interrupted' });
  }

  private publish(record: SessionRecord): void {
    this.deps.bus.publish({ id: record.id, state: record.state, record });
  }
}

/**
 * The error a failed create answers and records: the canceller's (stop, TTL) or the workflow's own, naming a step
 * in details.step (SPEC 12.6; a cancel names the step it interrupted) and keeping the rollback's failures.
 */
function describeFailure(outcome: Outcome, failure: EdgeechoError, step: string): EdgeechoError {
  const error = outcome.error ? EdgeechoError.fromWire(outcome.error) : failure;
  const details = { ...error.details };
  if (typeof details.step !== 'string') details.step = step;
  if (failure.details?.rollback_failures !== undefined) details.rollback_failures = failure.details.rollback_failures;
  return new EdgeechoError(error.code, error.message, details, { cause: failure });
}

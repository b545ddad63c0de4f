/**
 * Session ops: session.create runs the plain or segmented workflow and reports each step as status frames;
 * get/list read the store; stop finishes a session gracefully; watch follows one until its terminal state.
 * Completion (containers exiting) is detected by the reaper, which calls finishSession like stop does.
 */
import type { Logger } from 'pino';
import { EdgeechoError } from '../../protocol/errors.js';
import type { Config } from '../config.js';
import type { OpContext, OpDefinition } from '../daemon/op-registry.js';
import type { ContainerRef, NetworkRef, ReadyInfo, RuntimeDriver } from '../runtime/driver.js';
import type { SessionBus, SessionUpdate } from '../sessions/events.js';
import type { SessionUsage } from '../resources/tracker.js';
import { finishSession, type TeardownDeps } from '../sessions/teardown.js';
import { TERMINAL_STATES, type SessionMode, type SessionRecord, type SessionState, type SessionStore } from '../sessions/types.js';
import { runWorkflow, type StepStatus } from '../workflow/engine.js';
import { newSessionId, SESSION_ID_PATTERN } from '../workflow/session-id.js';
import { rolesOf, sessionSteps, STEP, type Admit, type Location, type Reservation, type SessionWorkflowDeps } from '../workflow/session-workflows.js';
import { sessionUsageWire } from './resource-ops.js';

export const DEFAULT_PAYLOAD_BYTES = 64;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 10_000;

export interface SessionOpsDeps {
  driver: RuntimeDriver;
  store: SessionStore;
  bus: SessionBus;
  config: Config;
  log: Logger;
  admit: Admit;
  /** Gives back a session's reservation when it finishes; defaults to the one admit returned in this process. */
  release?: (session: string) => void;
  /** Extra labels on every Docker object (tests). */
  labels?: Record<string, string>;
  startOrder?: SessionWorkflowDeps['startOrder'];
  /** The session's latest sampled CPU and memory (the resource tracker), shown by session.get. */
  usage?: (session: string) => SessionUsage | undefined;
}

interface CreateArgs {
  mode: SessionMode;
  count: number;
  payload_bytes?: number;
  rate?: number;
}

export interface SessionCreateResult {
  id: string;
  location: Location;
  network: NetworkRef;
  containers: ContainerRef[];
  probe: ReadyInfo;
}

/** What session.get/list answer: the record with wire-style field names. */
export function sessionView(record: SessionRecord): Record<string, unknown> {
  return {
    id: record.id,
    mode: record.mode,
    state: record.state,
    count: record.count,
    payload_bytes: record.payloadBytes,
    rate: record.rate,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    ended_at: record.endedAt,
    network: record.network,
    location: record.location,
    probe: record.probe,
    containers: record.containers.map((c) => ({
      id: c.id,
      name: c.name,
      role: c.role,
      started_at: c.startedAt,
      finished_at: c.finishedAt,
      exit_code: c.exitCode,
      stats: c.stats,
    })),
    error: record.error,
    transitions: record.transitions,
  };
}

/** Makes the session ops; the returned `creating` map lets shutdown see creates still in flight. */
export function sessionOps(deps: SessionOpsDeps): OpDefinition<any>[] {
  const { driver, store, bus, config, log } = deps;
  const reservations = new Map<string, Reservation>();
  /** Creates in flight, so session.stop can cancel one and wait for its rollback. */
  const creating = new Map<string, { abort: AbortController; done: Promise<unknown>; stopRequested: boolean }>();

  const release = (id: string): void => {
    if (deps.release) deps.release(id);
    reservations.get(id)?.release();
    reservations.delete(id);
  };
  const teardownDeps: TeardownDeps = { driver, store, bus, log, config, release };

  const getRecord = (id: string): SessionRecord => {
    const record = store.get(id);
    if (!record) throw new EdgeechoError('NOT_FOUND', `session ${id} does not exist (it may have been pruned after EDGEECHO_RETENTION_DAYS)`, { session: id });
    return record;
  };

  const publish = (record: SessionRecord): void => bus.publish({ id: record.id, state: record.state, record });

  const create: OpDefinition<CreateArgs> = {
    name: 'session.create',
    summary: 'create a plain or segmented stream session; status frames per step; result: id, location, containers, probe details',
    detached: true,
    args: {
      mode: { type: 'enum', values: ['plain', 'segmented'], required: true },
      count: { type: 'int', min: 1, max: config.maxCount, required: true },
      payload_bytes: { type: 'int', min: 1, max: config.maxPayloadBytes },
      rate: { type: 'int', min: 0, max: 100_000_000 },
    },
    async handler(args, ctx) {
      const began = performance.now();
      const elapsed = (): number => Math.round(performance.now() - began);
      const id = newSessionId();
      // The default must not exceed a lowered EDGEECHO_MAX_PAYLOAD_BYTES, or omitting the arg would ask for more than asking may.
      const payloadBytes = args.payload_bytes ?? Math.min(DEFAULT_PAYLOAD_BYTES, config.maxPayloadBytes);
      const session = { id, mode: args.mode, count: args.count, payloadBytes, rate: args.rate ? args.rate : null };
      const slog = ctx.log.child({ session: id });
      publish(store.create(session));
      ctx.status({ session: id, step: 'session', state: 'started', elapsed_ms: 0, details: { mode: session.mode, roles: rolesOf(session.mode) } });

      const abort = new AbortController();
      const signal = AbortSignal.any([ctx.signal, abort.signal]);
      const entry = { abort, done: Promise.resolve() as Promise<unknown>, stopRequested: false };
      creating.set(id, entry);
      const onStatus = (status: StepStatus): void => {
        ctx.status({ session: id, ...status });
        bus.publish({ id, state: 'creating', status: { ...status } });
      };
      const steps = sessionSteps(session, {
        driver,
        config,
        admit: async (sid, roles) => {
          const reservation = await deps.admit(sid, roles);
          // With a release hook (the daemon's admission) the session's end gives it back wherever the end comes from
          // (reaper, sweep, stop); keeping it here too would hold one entry per session the reaper finished.
          if (!deps.release) reservations.set(sid, reservation);
          return {
            release: () => {
              reservations.delete(sid);
              reservation.release();
            },
          };
        },
        ...(deps.labels ? { labels: deps.labels } : {}),
        ...(deps.startOrder ? { startOrder: deps.startOrder } : {}),
        onNetwork: (network) => store.update(id, { network }),
        onContainer: (c) => store.putContainer(id, { id: c.id, name: c.name, role: c.role, startedAt: null, finishedAt: null, exitCode: null, stats: null }),
      });
      const run = runWorkflow(steps, { signal, onStatus });
      entry.done = run.catch(() => undefined);
      let values: Map<string, unknown>;
      try {
        values = await run;
      } catch (err) {
        let error = EdgeechoError.from(err);
        let state: SessionState = entry.stopRequested ? 'stopped' : 'failed';
        const reason = entry.stopRequested ? 'stopped while creating' : error.message;
        slog.warn({ err: error.message, code: error.code }, 'session create rolled back');
        const current = store.get(id);
        if (current && TERMINAL_STATES.includes(current.state)) {
          // Finished meanwhile from elsewhere (the sweep's TTL): that outcome stands and is the one to report.
          state = current.state;
          if (current.error) error = EdgeechoError.fromWire(current.error);
        } else {
          publish(store.transition(id, state, reason, { error: error.toWire() }));
        }
        // Closes the `session` step opened above, so every step a client saw start also ends.
        const took = elapsed();
        ctx.status({ session: id, step: 'session', state: 'failed', elapsed_ms: took, duration_ms: took, details: { state }, error: error.toWire() });
        throw error;
      } finally {
        creating.delete(id);
      }
      const network = values.get(STEP.network) as NetworkRef;
      const location = values.get(STEP.location) as Location;
      const probe = values.get(STEP.ready('probe')) as ReadyInfo;
      const { event: _e, role: _r, ...probeDetails } = probe;
      const containers = rolesOf(session.mode).map((role) => values.get(STEP.create(role)) as ContainerRef);
      publish(store.transition(id, 'ready', undefined, { network, location, probe: probeDetails }));
      const took = elapsed();
      ctx.status({ session: id, step: 'session', state: 'done', elapsed_ms: took, duration_ms: took, details: { state: 'ready', location } });
      slog.info({ location }, 'session ready');
      return { id, location, network, containers, probe: probeDetails } satisfies SessionCreateResult;
    },
  };

  const sessionId = { type: 'string', required: true, pattern: SESSION_ID_PATTERN } as const;

  const get: OpDefinition<{ id: string }> = {
    name: 'session.get',
    summary: 'one session record',
    args: { id: sessionId },
    handler: async (args) => {
      const view = sessionView(getRecord(args.id));
      const usage = deps.usage?.(args.id);
      return usage ? { ...view, usage: sessionUsageWire(usage) } : view;
    },
  };

  const list: OpDefinition<{ state?: SessionState; limit?: number }> = {
    name: 'session.list',
    summary: 'session records, newest first, optionally of one state',
    args: {
      state: { type: 'enum', values: ['creating', 'ready', 'stopping', 'completed', 'failed', 'stopped'] },
      limit: { type: 'int', min: 1, max: MAX_LIST_LIMIT },
    },
    handler: async (args) => {
      const records = store.list({ ...(args.state ? { states: [args.state] } : {}), limit: args.limit ?? DEFAULT_LIST_LIMIT });
      return { sessions: records.map(sessionView) };
    },
  };

  const stop: OpDefinition<{ id: string }> = {
    name: 'session.stop',
    summary: 'stop a session gracefully and remove its containers and network; result: the final record',
    detached: true,
    args: { id: sessionId },
    async handler(args, ctx) {
      const began = performance.now();
      const elapsed = (): number => Math.round(performance.now() - began);
      const record = getRecord(args.id);
      const inCreate = creating.get(args.id);
      if (inCreate) {
        ctx.status({ session: args.id, step: 'cancel create', state: 'started', elapsed_ms: 0 });
        inCreate.stopRequested = true;
        inCreate.abort.abort(new EdgeechoError('CANCELLED', `session ${args.id} was stopped while creating`));
        await inCreate.done;
        const took = elapsed();
        ctx.status({ session: args.id, step: 'cancel create', state: 'done', elapsed_ms: took, duration_ms: took });
        return sessionView(getRecord(args.id));
      }
      if (!TERMINAL_STATES.includes(record.state) && record.state !== 'stopping') {
        publish(store.transition(args.id, 'stopping', 'session.stop'));
      }
      ctx.status({ session: args.id, step: 'stop', state: 'started', elapsed_ms: elapsed(), details: { timeout_s: config.stopTimeoutS } });
      const started = performance.now();
      const final = await finishSession(teardownDeps, args.id, TERMINAL_STATES.includes(record.state) ? {} : { state: 'stopped', reason: 'session.stop' });
      ctx.status({ session: args.id, step: 'stop', state: 'done', elapsed_ms: elapsed(), duration_ms: Math.round(performance.now() - started) });
      return sessionView(final);
    },
  };

  const watch: OpDefinition<{ id: string }> = {
    name: 'session.watch',
    summary: 'status frames as a session changes, until completed, failed or stopped; result: the final record with the emulators\' stats',
    args: { id: sessionId },
    handler: (args, ctx) => watchSession(args.id, ctx),
  };

  function watchSession(id: string, ctx: OpContext): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let unsubscribe = (): void => {};
      const onAbort = (): void => {
        unsubscribe();
        reject(new EdgeechoError('CANCELLED', `watching session ${id} was cancelled`));
      };
      const end = (record: SessionRecord): void => {
        unsubscribe();
        ctx.signal.removeEventListener('abort', onAbort);
        resolve(sessionView(record));
      };
      // Subscribe before reading the record, so a change between the two is not lost.
      unsubscribe = bus.subscribe(id, (update: SessionUpdate) => {
        if (update.status) ctx.status({ session: id, session_state: update.state, ...update.status });
        else {
          const frame: Record<string, unknown> = { session: id, step: 'session', state: update.state, session_state: update.state };
          if (update.record && TERMINAL_STATES.includes(update.state)) {
            frame.containers = update.record.containers.map((c) => ({ role: c.role, exit_code: c.exitCode, stats: c.stats }));
          }
          ctx.status(frame);
        }
        if (TERMINAL_STATES.includes(update.state) && update.record) end(update.record);
      });
      let record: SessionRecord;
      try {
        record = getRecord(id);
      } catch (err) {
        unsubscribe();
        reject(err);
        return;
      }
      if (TERMINAL_STATES.includes(record.state)) return end(record);
      if (ctx.signal.aborted) return onAbort();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      ctx.status({ session: id, step: 'session', state: record.state, session_state: record.state });
    });
  }

  return [create, get, list, stop, watch];
}

export { finishSession };

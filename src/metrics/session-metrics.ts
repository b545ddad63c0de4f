/**
 * Session metrics, read off the session bus: every state change and every workflow step status passes through
 * it, so no module below the lifecycle carries a counter. Live sessions by state are counted from the store
 * when scraped, so sessions adopted after a restart are counted too.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { SessionBus, SessionUpdate } from '../sessions/events.js';
import { LIVE_STATES, TERMINAL_STATES, type SessionRecord, type SessionState } from '../sessions/types.js';

export interface SessionMetricsDeps {
  registry: Registry;
  bus: SessionBus;
  /** Live sessions (creating, ready, stopping), read at scrape time. */
  liveSessions: () => readonly Pick<SessionRecord, 'state'>[];
  /** The engine event stream: `connected` (again after an error is a reconnect) and `stream-error`. */
  onEngineStream?: (listener: (e: { type: 'connected' | 'stream-error' }) => void) => () => void;
}

/** Seconds: a step takes from a millisecond (admit) to the ready timeout (30 s by default). */
const STEP_BUCKETS_S = [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const READY_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60];
/** Transition counts remembered to ignore a record published twice in the same state; bounded, oldest dropped. */
const MAX_REMEMBERED_SESSIONS = 4096;
/** Reaping: from an exit event (tens of ms) to the sweep's safety net (tens of seconds). */
const REAP_BUCKETS_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30, 60, 120];

interface StepStatus {
  step?: unknown;
  state?: unknown;
  duration_ms?: unknown;
  error?: { code?: unknown; details?: { resource?: unknown } };
}

export function watchSessions(deps: SessionMetricsDeps): () => void {
  const registers = [deps.registry];
  const created = new Counter({ name: 'edgeecho_sessions_created_total', help: 'sessions created, by mode', labelNames: ['mode'], registers });
  const finished = new Counter({ name: 'edgeecho_sessions_finished_total', help: 'sessions that reached a terminal state, by mode and outcome (completed, failed, stopped)', labelNames: ['mode', 'outcome'], registers });
  new Gauge({
    name: 'edgeecho_sessions_live',
    help: 'sessions not yet terminal, by state',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = new Map<SessionState, number>(LIVE_STATES.map((s) => [s, 0]));
      for (const r of deps.liveSessions()) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  const steps = new Histogram({ name: 'edgeecho_step_duration_seconds', help: 'workflow step durations, by step and how it ended (done, failed)', labelNames: ['step', 'state'], buckets: STEP_BUCKETS_S, registers });
  const toReady = new Histogram({ name: 'edgeecho_session_ready_seconds', help: 'from session.create to ready', buckets: READY_BUCKETS_S, registers });
  const reaping = new Histogram({ name: 'edgeecho_reaping_latency_seconds', help: 'from the last container exit to the session record being final', buckets: REAP_BUCKETS_S, registers });
  const rollbacks = new Counter({ name: 'edgeecho_rollbacks_total', help: 'creates that ended before ready and were rolled back, by outcome', labelNames: ['outcome'], registers });
  const refusals = new Counter({ name: 'edgeecho_admission_refusals_total', help: 'sessions refused by admission, by resource (sessions, memory, cpus, host_memory)', labelNames: ['resource'], registers });
  const engineErrors = new Counter({ name: 'edgeecho_engine_errors_total', help: 'engine failures: steps failed with RUNTIME_UNAVAILABLE (by step) and event stream errors (step "events")', labelNames: ['step'], registers });
  const reconnects = new Counter({ name: 'edgeecho_engine_event_reconnects_total', help: 'engine event stream reconnects after an error', registers });

  const onStatus = (status: StepStatus): void => {
    const step = typeof status.step === 'string' ? status.step : '?';
    if ((status.state === 'done' || status.state === 'failed') && typeof status.duration_ms === 'number') {
      steps.observe({ step, state: status.state }, status.duration_ms / 1000);
    }
    if (status.state !== 'failed' || !status.error) return;
    if (status.error.code === 'RUNTIME_UNAVAILABLE') engineErrors.inc({ step });
    const resource = status.error.details?.resource;
    if (step === 'admit' && status.error.code === 'RESOURCE_EXHAUSTED' && typeof resource === 'string') refusals.inc({ resource });
  };

  const seen = new Map<string, number>();
  const onRecord = (record: SessionRecord): void => {
    const t = record.transitions;
    const last = t.at(-1);
    if (!last || last.state !== record.state || (seen.get(record.id) ?? 0) >= t.length) return;
    seen.delete(record.id);
    seen.set(record.id, t.length);
    if (seen.size > MAX_REMEMBERED_SESSIONS) seen.delete(seen.keys().next().value as string);
    if (record.state === 'creating' && t.length === 1) created.inc({ mode: record.mode });
    const previous = t.at(-2)?.state;
    // a ready with no reason is the create's own; adoption after a restart gives one
    if (record.state === 'ready' && previous === 'creating' && !last.reason) toReady.observe((last.at - record.createdAt) / 1000);
    if (!TERMINAL_STATES.includes(record.state)) return;
    finished.inc({ mode: record.mode, outcome: record.state });
    if (previous === 'creating') rollbacks.inc({ outcome: record.state });
    const exitedAt = lastExit(record);
    if (record.state !== 'stopped' && exitedAt !== null && record.endedAt !== null) reaping.observe(Math.max(0, record.endedAt - exitedAt) / 1000);
  };

  const unsubscribe = deps.bus.subscribe(null, (update: SessionUpdate) => {
    if (update.status) onStatus(update.status as StepStatus);
    else if (update.record) onRecord(update.record);
  });
  let broken = false;
  const unwatchStream = deps.onEngineStream?.((e) => {
    if (e.type === 'stream-error') {
      engineErrors.inc({ step: 'events' });
      broken = true;
    } else if (broken) {
      broken = false;
      reconnects.inc();
    }
  });
  return () => {
    unsubscribe();
    unwatchStream?.();
  };
}

/** When the last container exited (ms), or null while any has not (or none ran). */
function lastExit(record: SessionRecord): number | null {
  if (record.containers.length === 0) return null;
  let latest = 0;
  for (const c of record.containers) {
    const at = c.finishedAt === null ? NaN : Date.parse(c.finishedAt);
    if (!Number.isFinite(at)) return null;
    latest = Math.max(latest, at);
  }
  return latest;
}

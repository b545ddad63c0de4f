/**
 * Finishing a session, shared by session.stop, the reaper (containers exited) and the TTL sweep: stop what still
 * runs, collect each emulator's final stats line, exit code and times, remove the containers, record the terminal
 * state and publish it, then remove the network. Idempotent: a session already finished is only cleaned up again, and
 * concurrent calls for one session share one run.
 */
import type { Logger } from 'pino';
import { EdgeechoError, type WireError } from '../../protocol/errors.js';
import { findStatsLine } from '../runtime/emulator-lines.js';
import type { ContainerState, RuntimeDriver } from '../runtime/driver.js';
import type { SessionBus } from './events.js';
import { TERMINAL_STATES, type SessionContainer, type SessionRecord, type SessionState, type SessionStore } from './types.js';

/** Lines of each container's log read for its stats line (the emulators print it last). */
export const STATS_TAIL_LINES = 50;

export interface TeardownDeps {
  driver: RuntimeDriver;
  store: SessionStore;
  bus: SessionBus;
  log: Logger;
  config: { stopTimeoutS: number; keepFailed?: boolean };
  /** Gives back the session's admission reservation (a no-op when it holds none). */
  release?: (session: string) => void;
}

export type TerminalState = 'completed' | 'failed' | 'stopped';

export interface SessionOutcome {
  /** Omitted: completed when every container exited 0 and no stats line reports an error or loss, else failed. */
  state?: TerminalState;
  reason?: string;
  error?: WireError;
}

const inFlight = new WeakMap<SessionStore, Map<string, Promise<SessionRecord>>>();

export function finishSession(deps: TeardownDeps, id: string, outcome: SessionOutcome = {}): Promise<SessionRecord> {
  let running = inFlight.get(deps.store);
  if (!running) inFlight.set(deps.store, (running = new Map()));
  const existing = running.get(id);
  if (existing) return existing;
  const work = finish(deps, id, outcome).finally(() => running!.delete(id));
  running.set(id, work);
  return work;
}

function judge(containers: SessionContainer[]): { state: TerminalState; reason?: string; error?: WireError } {
  for (const c of containers) {
    const stats = c.stats;
    if (c.exitCode !== 0) {
      const why = typeof stats?.error === 'string' ? `: ${stats.error}` : '';
      return { state: 'failed', reason: `${c.role} exited with code ${c.exitCode}${why}`, error: { code: 'INTERNAL', message: `${c.role} (${c.name}) exited with code ${c.exitCode}${why}`, details: { role: c.role, exit_code: c.exitCode } } };
    }
    if (stats && (typeof stats.error === 'string' || (typeof stats.lost === 'number' && stats.lost > 0))) {
      const message = `${c.role} reports ${typeof stats.error === 'string' ? stats.error : `${stats.lost} lost frames`}`;
      return { state: 'failed', reason: message, error: { code: 'INTERNAL', message, details: { role: c.role, stats } } };
    }
  }
  return { state: 'completed' };
}

async function finish(deps: TeardownDeps, id: string, outcome: SessionOutcome): Promise<SessionRecord> {
  const { driver, store, bus, log } = deps;
  const record = store.get(id);
  if (!record) throw new EdgeechoError('NOT_FOUND', `session ${id} does not exist`, { session: id });
  const alreadyFinished = TERMINAL_STATES.includes(record.state);

  // The engine is the authority on what exists: a container created just before a crash may be unrecorded.
  let managed: { containers: ContainerState[]; networks: Array<{ id: string; session?: string }> } = { containers: [], networks: [] };
  try {
    const all = await driver.listManaged();
    managed = { containers: all.containers.filter((c) => c.session === id), networks: all.networks.filter((n) => n.session === id) };
  } catch (err) {
    log.warn({ session: id, err: (err as Error).message }, 'listing the session objects failed; using the record');
  }
  const containerIds = new Set([...record.containers.map((c) => c.id), ...managed.containers.map((c) => c.id)]);
  const networkIds = new Set([...(record.network ? [record.network.id] : []), ...managed.networks.map((n) => n.id)]);

  let current = record;
  if (!alreadyFinished) {
    if (managed.containers.some((c) => c.running)) {
      await Promise.all(
        managed.containers
          .filter((c) => c.running)
          .map((c) => driver.stopContainer(c.id, deps.config.stopTimeoutS).catch((err) => log.warn({ session: id, container: c.name, err: (err as Error).message }, 'stopping failed'))),
      );
    }
    const collected = await Promise.all([...containerIds].map((cid) => collect(driver, cid, record, log)));
    for (const container of collected) if (container) current = store.putContainer(id, container);
  }

  const judged = outcome.state ? { state: outcome.state } : judge(current.containers);
  const state: SessionState = alreadyFinished ? record.state : outcome.state ?? judged.state;
  const keep = state === 'failed' && deps.config.keepFailed === true;
  if (!keep) {
    const removals = await Promise.allSettled([...containerIds].map((cid) => driver.removeContainer(cid)));
    for (const r of removals) if (r.status === 'rejected') log.warn({ session: id, err: (r.reason as Error).message }, 'removing a container failed; the sweep retries');
  }
  deps.release?.(id);
  let final = store.get(id) ?? record;
  if (!alreadyFinished) {
    // Recorded before the network goes: Docker takes ~0.5 s to remove a bridge, and the outcome is known now.
    const reason = outcome.reason ?? ('reason' in judged ? judged.reason : undefined);
    const error = outcome.error ?? ('error' in judged ? judged.error : undefined);
    final = store.transition(id, state, reason, error ? { error } : {});
    log.info({ session: id, state, reason }, 'session finished');
    bus.publish({ id, state, record: final });
  }
  if (!keep) {
    for (const nid of networkIds) {
      await driver.removeNetwork(nid).catch((err) => log.warn({ session: id, network: nid, err: (err as Error).message }, 'removing the network failed; the sweep retries'));
    }
  }
  return final;
}

async function collect(driver: RuntimeDriver, containerId: string, record: SessionRecord, log: Logger): Promise<SessionContainer | null> {
  let state: ContainerState;
  try {
    state = await driver.inspectContainer(containerId);
  } catch (err) {
    if (err instanceof EdgeechoError && err.code === 'NOT_FOUND') return null;
    log.warn({ session: record.id, container: containerId, err: (err as Error).message }, 'inspecting a container failed');
    return null;
  }
  let stats: Record<string, unknown> | null = null;
  try {
    stats = findStatsLine(await driver.logs(containerId, STATS_TAIL_LINES));
  } catch (err) {
    log.warn({ session: record.id, container: state.name, err: (err as Error).message }, 'reading the stats line failed');
  }
  const known = record.containers.find((c) => c.id === containerId);
  return {
    id: containerId,
    name: state.name,
    role: state.role ?? known?.role ?? 'probe',
    startedAt: state.startedAt,
    finishedAt: state.finishedAt,
    exitCode: state.exitCode,
    stats,
  };
}

/**
 * The mechanics of finishing a session, run only by the lifecycle (which decides when, and guards that one runs
 * per session): stop what still runs, collect each emulator's final stats line, exit code and times, remove the
 * containers, record the terminal state and publish it, then remove the network. A session already finished is
 * only cleaned up again.
 */
import type { Logger } from 'pino';
import { EdgeechoError } from '../../protocol/errors.js';
import { findStatsLine } from '../runtime/emulator-lines.js';
import type { ContainerState, RuntimeDriver } from '../runtime/driver.js';
import type { SessionBus } from './events.js';
import { judge, type Outcome } from './outcome.js';
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
  release: (session: string) => void;
}

/**
 * Tears the session down; `outcome` null: judged from the containers' exit codes and stats once collected.
 * `rollback`: what a create cut off by a crash left is removed at once, unstopped and uncollected, and never kept
 * for debugging (it never ran as a session; reconcile at start-up must not wait on graceful stops).
 */
export async function tearDown(deps: TeardownDeps, record: SessionRecord, outcome: Outcome | null, options: { rollback?: boolean } = {}): Promise<SessionRecord> {
  const { driver, store, bus, log } = deps;
  const id = record.id;
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
  /** Why the runtime ended a container, by id, when it did not end by itself (its node went down). */
  const endings = new Map<string, string>();
  if (!alreadyFinished && !options.rollback) {
    if (managed.containers.some((c) => c.running)) {
      await Promise.all(
        managed.containers
          .filter((c) => c.running)
          .map((c) => driver.stopContainer(c.id, deps.config.stopTimeoutS).catch((err) => log.warn({ session: id, container: c.name, err: (err as Error).message }, 'stopping failed'))),
      );
    }
    const collected = await Promise.all([...containerIds].map((cid) => collect(driver, cid, record, log)));
    for (const c of collected) {
      if (!c) continue;
      current = store.putContainer(id, c.container);
      if (c.ended) endings.set(c.container.id, c.ended);
    }
  }

  const decided = outcome ?? judge(current.containers, endings);
  const state: SessionState = alreadyFinished ? record.state : decided.state;
  const keep = state === 'failed' && deps.config.keepFailed === true && !options.rollback;
  if (!keep) {
    const removals = await Promise.allSettled([...containerIds].map((cid) => driver.removeContainer(cid)));
    for (const r of removals) if (r.status === 'rejected') log.warn({ session: id, err: (r.reason as Error).message }, 'removing a container failed; the sweep retries');
  }
  deps.release(id);
  let final = store.get(id) ?? record;
  if (!alreadyFinished) {
    // Recorded before the network goes: Docker takes ~0.5 s to remove a bridge, and the outcome is known now.
    final = store.transition(id, state, decided.reason, decided.error ? { error: decided.error } : {});
    log.info({ session: id, state, reason: decided.reason }, 'session finished');
    bus.publish({ id, state, record: final });
  }
  if (!keep) {
    for (const nid of networkIds) {
      await driver.removeNetwork(nid).catch((err) => log.warn({ session: id, network: nid, err: (err as Error).message }, 'removing the network failed; the sweep retries'));
    }
  }
  return final;
}

async function collect(driver: RuntimeDriver, containerId: string, record: SessionRecord, log: Logger): Promise<{ container: SessionContainer; ended?: string } | null> {
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
  const container: SessionContainer = {
    id: containerId,
    name: state.name,
    role: state.role ?? known?.role ?? 'probe',
    startedAt: state.startedAt,
    finishedAt: state.finishedAt,
    exitCode: state.exitCode,
    stats,
  };
  return state.ended ? { container, ended: state.ended } : { container };
}

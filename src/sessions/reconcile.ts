/**
 * Start-up reconciliation: the engine's labelled objects against the records the last run left. Running
 * sessions are adopted (re-reserved, then reaped as usual), sessions whose containers vanished are failed,
 * sessions caught mid-create are rolled back, and objects no record claims are removed (after the orphan grace).
 * Shutdown, by default, leaves running sessions running for the next start to adopt.
 */
import type { Logger } from 'pino';
import type { WireError } from '../../protocol/errors.js';
import { rolesFor, type Admission } from '../resources/admission.js';
import type { ContainerState, ManagedObjects, Role, RuntimeDriver } from '../runtime/driver.js';
import type { FinishOnce } from './reaper.js';
import { ObjectAges, removeUnclaimed, VANISHED, type CleanupReport, type SweepSettings } from './sweep.js';
import { LIVE_STATES, type SessionRecord, type SessionStore } from './types.js';

export const RESTARTED_DURING_CREATE = 'daemon restarted during create';

export interface ReconcileOptions {
  driver: Pick<RuntimeDriver, 'listManaged' | 'removeContainer' | 'removeNetwork'>;
  store: SessionStore;
  finisher: FinishOnce;
  settings: Pick<SweepSettings, 'orphanGraceS' | 'keepFailed' | 'sessionTtlS'>;
  log: Logger;
  admission?: Pick<Admission, 'adopt'>;
  /** Shared with the sweep, so ages counted here carry on there. */
  ages?: ObjectAges;
  owns?: (session: string | undefined) => boolean;
  now?: () => number;
}

export interface ReconcileReport {
  adopted: string[];
  /** Ready sessions whose containers had all exited meanwhile: finished as the reaper would have. */
  finished: string[];
  /** Stops interrupted by the restart, completed now. */
  stopped: string[];
  vanished: string[];
  rolledBack: string[];
  removed: CleanupReport;
}

export async function reconcile(options: ReconcileOptions): Promise<ReconcileReport> {
  const { driver, store, finisher, log } = options;
  const owns = options.owns ?? (() => true);
  const now = options.now ?? Date.now;
  const ages = options.ages ?? new ObjectAges();
  const report: ReconcileReport = { adopted: [], finished: [], stopped: [], vanished: [], rolledBack: [], removed: { containers: [], networks: [] } };

  const managed = await driver.listManaged();
  const containersOf = groupBy(managed.containers, (c) => c.session);
  const networksOf = groupBy(managed.networks, (n) => n.session);

  for (const record of store.list({ states: LIVE_STATES }).filter((r) => owns(r.id))) {
    const containers = containersOf.get(record.id) ?? [];
    const networks = networksOf.get(record.id) ?? [];
    const log1 = log.child({ session: record.id });
    try {
      if (record.state === 'creating') {
        if (completeSet(record, containers)) {
          adopt(options, record, containers, 'adopted after restart: every container was running');
          report.adopted.push(record.id);
        } else {
          await removeObjects(driver, containers, networks, record, log1);
          const error: WireError = { code: 'INTERNAL', message: `${RESTARTED_DURING_CREATE}; its containers were removed`, details: { containers: containers.length } };
          store.transition(record.id, 'failed', RESTARTED_DURING_CREATE, { error });
          report.rolledBack.push(record.id);
          log1.warn(RESTARTED_DURING_CREATE);
        }
      } else if (record.state === 'stopping') {
        // Before the vanished check: a stop interrupted after removing its containers has nothing left to find.
        await finisher.run(record.id, { cause: 'stop', reason: 'stop completed after daemon restart' });
        report.stopped.push(record.id);
      } else if (containers.length === 0) {
        await removeObjects(driver, [], networks, record, log1);
        const error: WireError = { code: 'RUNTIME_UNAVAILABLE', message: `${VANISHED}; expected ${record.containers.length} containers, found none`, details: { expected: record.containers.map((c) => c.name) } };
        store.transition(record.id, 'failed', VANISHED, { error });
        report.vanished.push(record.id);
        log1.warn(VANISHED);
      } else if (containers.some((c) => c.running)) {
        adopt(options, record, containers);
        report.adopted.push(record.id);
      } else {
        await finisher.run(record.id, { cause: 'exited' });
        report.finished.push(record.id);
      }
    } catch (err) {
      log1.error({ err: (err as Error).message }, 'could not reconcile session');
    }
  }

  // Re-listed: the rollbacks and finishes above removed objects, which must not be counted as orphans again.
  const after: ManagedObjects = await driver.listManaged().catch(() => managed);
  report.removed = await removeUnclaimed({ driver, store, finisher, settings: options.settings, ages, log, owns }, after, now());
  log.info(
    { adopted: report.adopted.length, finished: report.finished.length, stopped: report.stopped.length, vanished: report.vanished.length, rolledBack: report.rolledBack.length, removed: report.removed },
    'reconciled sessions with the runtime',
  );
  return report;
}

/** A create caught after every container of its mode was started: nothing is missing, so it is kept. */
function completeSet(record: SessionRecord, containers: ContainerState[]): boolean {
  // The probe ends by design once it has answered, so it may have exited; the servers must be running.
  const servers = rolesFor(record.mode).filter((r) => r !== 'probe');
  return servers.every((role) => containers.some((c) => c.role === role && c.running));
}

function adopt(options: ReconcileOptions, record: SessionRecord, containers: ContainerState[], reason?: string): void {
  const roles = [...new Set(containers.map((c) => c.role).filter((r): r is Role => r !== undefined))];
  options.admission?.adopt(record.id, roles.length ? roles : rolesFor(record.mode));
  if (record.state === 'creating') {
    const stream = containers.find((c) => c.role === 'stream' && c.published);
    const patch = !record.location && stream?.published ? { location: stream.published } : {};
    for (const c of containers) {
      if (!record.containers.some((k) => k.id === c.id) && c.role) {
        options.store.putContainer(record.id, { id: c.id, name: c.name, role: c.role, startedAt: c.startedAt, finishedAt: c.finishedAt, exitCode: c.exitCode, stats: null });
      }
    }
    options.store.transition(record.id, 'ready', reason, patch);
  }
  options.log.info({ session: record.id, containers: containers.length }, 'adopted running session');
}

async function removeObjects(
  driver: ReconcileOptions['driver'],
  containers: ContainerState[],
  networks: ManagedObjects['networks'],
  record: SessionRecord,
  log: Logger,
): Promise<void> {
  const ids = new Set([...containers.map((c) => c.id), ...record.containers.map((c) => c.id)]);
  await Promise.all([...ids].map((id) => driver.removeContainer(id).catch((err: Error) => log.warn({ container: id, err: err.message }, 'could not remove container'))));
  const networkIds = new Set([...networks.map((n) => n.id), ...(record.network ? [record.network.id] : [])]);
  for (const id of networkIds) {
    await driver.removeNetwork(id).catch((err: Error) => {
      if ((err as { code?: string }).code !== 'NOT_FOUND') log.warn({ network: id, err: err.message }, 'could not remove network');
    });
  }
}

function groupBy<T>(items: T[], key: (item: T) => string | undefined): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    if (k === undefined) continue;
    const list = out.get(k) ?? [];
    list.push(item);
    out.set(k, list);
  }
  return out;
}

export interface ShutdownOptions {
  store: Pick<SessionStore, 'list'>;
  finisher: FinishOnce;
  stopSessionsOnShutdown: boolean;
  log: Logger;
  owns?: (session: string) => boolean;
}

/**
 * By default live sessions are left running (the next start adopts them); with EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN
 * they are stopped and recorded as such. Returns the sessions stopped.
 */
export async function shutdownSessions(options: ShutdownOptions): Promise<string[]> {
  if (!options.stopSessionsOnShutdown) return [];
  const owns = options.owns ?? (() => true);
  const live = options.store.list({ states: ['ready', 'stopping'] }).filter((r) => owns(r.id));
  await Promise.allSettled(live.map((r) => options.finisher.run(r.id, { cause: 'stop', reason: 'daemon shutdown (EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN)' })));
  await options.finisher.idle();
  options.log.info({ stopped: live.length }, 'stopped live sessions on shutdown');
  return live.map((r) => r.id);
}

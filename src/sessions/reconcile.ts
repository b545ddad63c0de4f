/**
 * Start-up reconciliation detects what the last run left: the engine's labelled objects against the records.
 * It hands each live record to the lifecycle: running sessions are adopted, sessions whose containers vanished,
 * creates cut off by a crash and interrupted stops are finished; objects no record claims are removed (after the
 * orphan grace). Like the sweep, it sees only this daemon's instance of the runtime (runtime/instance-scope.ts).
 */
import type { Logger } from 'pino';
import type { ContainerState, ManagedObjects, RuntimeDriver } from '../runtime/driver.js';
import { rolesOf } from '../workflow/session-spec.js';
import type { SessionLifecycle } from './lifecycle.js';
import type { Finisher } from './outcome.js';
import type { ParkedView } from './parked-store.js';
import type { ParkedReconcileReport } from './parking.js';
import { ObjectAges, removeUnclaimed, type CleanupReport, type SweepSettings } from './sweep.js';
import { LIVE_STATES, type SessionRecord, type SessionStore } from './types.js';

export interface ReconcileOptions {
  driver: Pick<RuntimeDriver, 'listManaged' | 'removeContainer' | 'removeNetwork'>;
  store: Pick<SessionStore, 'list' | 'get'>;
  lifecycle: Finisher & Pick<SessionLifecycle, 'adopt'>;
  settings: Pick<SweepSettings, 'orphanGraceS' | 'keepFailed' | 'sessionTtlS'>;
  log: Logger;
  /** Shared with the sweep, so ages counted here carry on there. */
  ages?: ObjectAges;
  now?: () => number;
  /** The warm pools: parked sessions are adopted when whole, else cleaned, and their objects are not orphans. */
  parked?: Pick<ParkedView, 'has'> & { adopt(managed: ManagedObjects): Promise<ParkedReconcileReport>; anyStillParked(containerIds: readonly string[]): Promise<boolean> };
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
  /** Parked sessions adopted into the pools, and those cleaned (cut off while parking, broken, surplus). */
  parked: { adopted: number; discarded: number };
}

export async function reconcile(options: ReconcileOptions): Promise<ReconcileReport> {
  const { driver, store, lifecycle, log } = options;
  const now = options.now ?? Date.now;
  const ages = options.ages ?? new ObjectAges();
  const report: ReconcileReport = { adopted: [], finished: [], stopped: [], vanished: [], rolledBack: [], removed: { containers: [], networks: [] }, parked: { adopted: 0, discarded: 0 } };

  const managed = await driver.listManaged();
  const containersOf = groupBy(managed.containers, (c) => c.session);

  for (const record of store.list({ states: LIVE_STATES })) {
    const containers = containersOf.get(record.id) ?? [];
    const log1 = log.child({ session: record.id });
    try {
      if (record.state === 'creating') {
        if (completeSet(record, containers) && !(await options.parked?.anyStillParked(containers.map((c) => c.id)))) {
          lifecycle.adopt(record, containers, 'adopted after restart: every container was running');
          report.adopted.push(record.id);
        } else {
          await lifecycle.finish(record.id, { cause: 'interrupted' });
          report.rolledBack.push(record.id);
          log1.warn('rolled back a create the restart cut off');
        }
      } else if (record.state === 'stopping') {
        // Before the vanished check: a stop interrupted after removing its containers has nothing left to find.
        await lifecycle.finish(record.id, { cause: 'stop', reason: 'stop completed after daemon restart' });
        report.stopped.push(record.id);
      } else if (containers.length === 0) {
        await lifecycle.finish(record.id, { cause: 'vanished', expected: record.containers.map((c) => c.name) });
        report.vanished.push(record.id);
        log1.warn('containers vanished while the daemon was down');
      } else if (containers.some((c) => c.running)) {
        lifecycle.adopt(record, containers);
        report.adopted.push(record.id);
      } else {
        await lifecycle.finish(record.id, { cause: 'exited' });
        report.finished.push(record.id);
      }
    } catch (err) {
      log1.error({ err: (err as Error).message }, 'could not reconcile session');
    }
  }

  if (options.parked) {
    const parked = await options.parked.adopt(managed);
    report.parked = { adopted: parked.adopted.length, discarded: parked.discarded.length };
  }
  // Re-listed: the rollbacks and finishes above removed objects, which must not be counted as orphans again.
  const after: ManagedObjects = await driver.listManaged().catch(() => managed);
  const parked = options.parked;
  report.removed = await removeUnclaimed({ driver, store, finisher: lifecycle, settings: options.settings, ages, log, ...(parked ? { parked } : {}) }, after, now());
  log.info(
    { adopted: report.adopted.length, finished: report.finished.length, stopped: report.stopped.length, vanished: report.vanished.length, rolledBack: report.rolledBack.length, removed: report.removed, parked: report.parked },
    'reconciled sessions with the runtime',
  );
  return report;
}

/** A create caught after every container of its mode was started: nothing is missing, so it is kept. */
function completeSet(record: SessionRecord, containers: ContainerState[]): boolean {
  // The probe ends by design once it has answered, so it may have exited, but it must have been started: a crash
  // between its create and its start leaves it created and never run, and the servers would wait for it in vain.
  const probeStarted = containers.some((c) => c.role === 'probe' && (c.running || c.exitCode !== null || c.status === 'exited'));
  const servers = rolesOf(record.mode).filter((r) => r !== 'probe');
  return probeStarted && servers.every((role) => containers.some((c) => c.role === role && c.running));
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

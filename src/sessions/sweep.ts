/**
 * The safety net behind the reaper, on EDGEECHO_SWEEP_CRON: hands the lifecycle ready sessions whose exit events
 * were missed and sessions past EDGEECHO_SESSION_TTL_S, removes labelled objects no record claims
 * (after EDGEECHO_ORPHAN_GRACE_S: Docker can create a container and still answer the create with an error, and
 * a create in flight labels objects before the workflow records them), and prunes records past retention.
 * Its driver is the daemon's instance scope (compose.ts): objects of other daemons on the engine are not listed,
 * so they can never look unclaimed here.
 */
import type { Logger } from 'pino';
import type { Admission } from '../resources/admission.js';
import type { ManagedObjects, RuntimeDriver } from '../runtime/driver.js';
import { cronScheduler, type ScheduledJob, type Scheduler } from '../scheduler.js';
import type { Finisher } from './outcome.js';
import type { ParkedView } from './parked-store.js';
import { LIVE_STATES, type SessionRecord, type SessionStore } from './types.js';

export const DAY_MS = 86_400_000;

export interface SweepSettings {
  sessionTtlS: number;
  orphanGraceS: number;
  retentionDays: number;
  keepFailed: boolean;
}

/**
 * How old each labelled object is: from the creation time the runtime reports, or, when it reports none, from
 * the first sweep (or reconcile) that saw it: conservative, never early.
 */
export class ObjectAges {
  private readonly firstSeen = new Map<string, number>();

  ageMs(id: string, now: number, created?: string): number {
    let seen = this.firstSeen.get(id);
    if (seen === undefined) {
      seen = now;
      this.firstSeen.set(id, seen);
    }
    const createdMs = created ? Date.parse(created) : NaN;
    return now - (Number.isFinite(createdMs) ? Math.min(createdMs, seen) : seen);
  }

  /** Forgets objects that are gone. */
  retain(present: Iterable<string>): void {
    const keep = new Set(present);
    for (const id of this.firstSeen.keys()) if (!keep.has(id)) this.firstSeen.delete(id);
  }
}

export interface CleanupDeps {
  driver: Pick<RuntimeDriver, 'removeContainer' | 'removeNetwork'>;
  store: Pick<SessionStore, 'get'>;
  finisher: Pick<Finisher, 'finishing'>;
  settings: Pick<SweepSettings, 'orphanGraceS' | 'keepFailed' | 'sessionTtlS'>;
  ages: ObjectAges;
  log: Logger;
  /** Parked sessions of the warm pools claim their objects like live records do. */
  parked?: Pick<ParkedView, 'has'>;
}

export interface CleanupReport {
  containers: string[];
  networks: string[];
}

/** A record claims its objects while live, and a failed one kept for debugging (EDGEECHO_KEEP_FAILED) until the TTL. */
export function claims(record: SessionRecord | undefined, settings: Pick<SweepSettings, 'keepFailed' | 'sessionTtlS'>, now: number): boolean {
  if (!record) return false;
  if (LIVE_STATES.includes(record.state)) return true;
  return settings.keepFailed && record.state === 'failed' && record.endedAt !== null && now - record.endedAt < settings.sessionTtlS * 1000;
}

/** Removes labelled objects nobody claims (past the grace when no record knows them); containers before networks. */
export async function removeUnclaimed(deps: CleanupDeps, managed: ManagedObjects, now: number): Promise<CleanupReport> {
  const claimCache = new Map<string, boolean>();
  const claimed = (session: string | undefined): boolean => {
    if (!session) return false;
    let c = claimCache.get(session);
    if (c === undefined) {
      c = deps.finisher.finishing(session) || claims(deps.store.get(session), deps.settings, now) || deps.parked?.has(session) === true;
      claimCache.set(session, c);
    }
    return c;
  };
  // The grace covers objects no record knows yet (Docker can create a container and still return an error, or a
  // create is mid-flight); objects of a finished session are garbage at once, e.g. a network whose removal failed
  // while dockerd was restarting.
  const graceFor = (session: string | undefined): number => (session !== undefined && deps.store.get(session) ? 0 : deps.settings.orphanGraceS * 1000);
  const report: CleanupReport = { containers: [], networks: [] };
  const doomed = managed.containers.filter((c) => !claimed(c.session) && deps.ages.ageMs(c.id, now, c.created) >= graceFor(c.session));
  await Promise.all(
    doomed.map(async (c) => {
      try {
        await deps.driver.removeContainer(c.id);
        report.containers.push(c.id);
      } catch (err) {
        deps.log.warn({ container: c.name, session: c.session, err: (err as Error).message }, 'could not remove unclaimed container');
      }
    }),
  );
  for (const n of managed.networks) {
    if (claimed(n.session) || deps.ages.ageMs(n.id, now, n.created) < graceFor(n.session)) continue;
    // A network still holding a container that was not removed above would refuse; the next sweep retries.
    if (managed.containers.some((c) => c.session !== undefined && c.session === n.session && !doomed.includes(c))) continue;
    try {
      await deps.driver.removeNetwork(n.id);
      report.networks.push(n.id);
    } catch (err) {
      deps.log.warn({ network: n.name, session: n.session, err: (err as Error).message }, 'could not remove unclaimed network');
    }
  }
  if (report.containers.length || report.networks.length) deps.log.info({ containers: report.containers.length, networks: report.networks.length }, 'removed unclaimed labelled objects');
  return report;
}

export interface SweepOptions {
  driver: Pick<RuntimeDriver, 'listManaged' | 'removeContainer' | 'removeNetwork'>;
  store: SessionStore;
  finisher: Finisher;
  settings: SweepSettings;
  cron: string;
  log: Logger;
  ages?: ObjectAges;
  admission?: Pick<Admission, 'retain'>;
  now?: () => number;
  scheduler?: Scheduler;
  /** Parked sessions: they keep their reservations, and one with a container not running is handed to the pool. */
  parked?: ParkedView & { entries(): Array<{ id: string; state: string; containers: Array<{ id: string }> }> };
}

export interface SweepReport {
  /** Ready sessions whose containers had all exited (events missed). */
  finished: string[];
  /** Live sessions past the TTL, stopped and failed. */
  expired: string[];
  removed: CleanupReport;
  pruned: number;
  /** Set when the runtime could not be listed; records were still pruned. */
  runtimeError?: string;
}

export class Sweep {
  readonly ages: ObjectAges;
  private job: ScheduledJob | null = null;
  private running: Promise<SweepReport> | null = null;
  private readonly now: () => number;

  constructor(private readonly options: SweepOptions) {
    this.ages = options.ages ?? new ObjectAges();
    this.now = options.now ?? Date.now;
  }

  start(): void {
    if (this.job) return;
    this.job = (this.options.scheduler ?? cronScheduler)(this.options.cron, 'edgeecho-sweep', () => {
      this.tick().catch((err: Error) => this.options.log.error({ err: err.message }, 'sweep failed'));
    });
  }

  async stop(): Promise<void> {
    this.job?.cancel();
    this.job = null;
    await this.running?.catch(() => undefined);
  }

  /** One sweep now; a sweep already running is joined. */
  tick(): Promise<SweepReport> {
    this.running ??= this.sweep().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async sweep(): Promise<SweepReport> {
    const { driver, store, finisher, settings, log } = this.options;
    const now = this.now();
    const report: SweepReport = { finished: [], expired: [], removed: { containers: [], networks: [] }, pruned: 0 };
    // Read before the listing: a session turning ready while the engine answers would otherwise be judged on a
    // listing taken before its containers started, and be finished (or failed as vanished) at birth.
    const live = store.list({ states: LIVE_STATES });
    // Parked entries too: one parked after the listing would look as if its containers were not running.
    const parkedEntries = this.options.parked?.entries() ?? [];
    this.options.admission?.retain(new Set([...live.map((r) => r.id), ...(this.options.parked?.ids() ?? [])]));
    let managed: ManagedObjects | null = null;
    try {
      managed = await driver.listManaged();
    } catch (err) {
      report.runtimeError = (err as Error).message;
      log.warn({ err: report.runtimeError }, 'sweep cannot list runtime objects; only pruning records');
    }
    if (managed) {
      const running = new Set(managed.containers.filter((c) => c.running).map((c) => c.id));
      const present = new Set(managed.containers.map((c) => c.id));
      const ttlMs = settings.sessionTtlS * 1000;
      await Promise.all(
        live.map(async (record) => {
          if (finisher.finishing(record.id)) return;
          try {
            if (now - record.createdAt > ttlMs) {
              await this.expire(record);
              report.expired.push(record.id);
            } else if (record.state === 'ready' && record.containers.length > 0 && record.containers.every((c) => !running.has(c.id))) {
              log.info({ session: record.id }, 'sweep found a finished session the reaper missed');
              if (record.containers.some((c) => present.has(c.id))) await finisher.finish(record.id, { cause: 'exited' });
              else await finisher.finish(record.id, { cause: 'vanished', expected: record.containers.map((c) => c.name) });
              report.finished.push(record.id);
            }
          } catch (err) {
            log.warn({ session: record.id, err: (err as Error).message }, 'sweep could not finish session');
          }
        }),
      );
      for (const entry of parkedEntries) {
        // Parked and missing a running container (its exit event was missed), or a row a failed discard left.
        if (entry.state === 'parked' && !entry.containers.every((c) => running.has(c.id))) this.options.parked!.exited(entry.id, 'sweep found a parked container not running');
      }
      // Listed before the finishes above: their objects are in flight or gone, so claims are judged now.
      const parked = this.options.parked;
      report.removed = await removeUnclaimed({ driver, store, finisher, settings, ages: this.ages, log, ...(parked ? { parked } : {}) }, managed, this.now());
      this.ages.retain([...managed.containers.map((c) => c.id), ...managed.networks.map((n) => n.id)]);
    }
    report.pruned = store.prune(now - settings.retentionDays * DAY_MS);
    if (report.pruned) log.info({ pruned: report.pruned, retentionDays: settings.retentionDays }, 'pruned old session records');
    return report;
  }

  private async expire(record: SessionRecord): Promise<void> {
    const { finisher, settings, log } = this.options;
    log.warn({ session: record.id, state: record.state, ttlS: settings.sessionTtlS }, 'session past its TTL');
    // The lifecycle stops what still runs (SIGTERM, then SIGKILL) so the emulators print their final stats first.
    await finisher.finish(record.id, { cause: 'expired', ttlS: settings.sessionTtlS, state: record.state });
  }
}

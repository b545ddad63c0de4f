/**
 * The lifecycle's half of the warm pools: the session lifecycle owns it (lifecycle.ts), the pool (pool.ts) only
 * decides when to ask. It parks a session (record first, then the park workflow), discards one (at most one
 * discard per parked session at a time), turns a claimed one into a session record in the same transaction that
 * drops its parked row, and after a restart adopts what is still parked and whole or cleans what is not.
 */
import type { Logger } from 'pino';
import type { ContainerState, ManagedObjects, Role, RuntimeDriver } from '../runtime/driver.js';
import { parseEventLine } from '../runtime/emulator-lines.js';
import { runParkWorkflow, type ParkedObjects } from '../workflow/parking-workflows.js';
import { rolesOf, type SessionMode, type SessionSpec } from '../workflow/session-spec.js';
import type { SessionWorkflowConfig } from '../workflow/session-workflows.js';
import type { ParkedEntry, ParkedStore } from './parked-store.js';
import { OncePerSession } from './once-per-session.js';
import { newSessionId } from './session-id.js';
import type { SessionStore } from './types.js';

export interface ParkingDeps {
  driver: RuntimeDriver;
  store: SessionStore;
  parked: ParkedStore;
  admission: { admit(session: string, roles: readonly Role[]): unknown; release(session: string): void; adopt(session: string, roles: readonly Role[]): unknown };
  config: SessionWorkflowConfig;
  log: Logger;
  labels?: Record<string, string>;
}

export interface ParkedReconcileReport {
  adopted: ParkedEntry[];
  discarded: string[];
}

export class Parking {
  private readonly discards = new OncePerSession<void>();

  constructor(private readonly deps: ParkingDeps) {}

  /** True when the runtime can hand a parked container its parameters. */
  get supported(): boolean {
    return typeof this.deps.driver.unpark === 'function';
  }

  /** Makes one parked session of `mode`; its row exists before its first object, and goes if the park fails. */
  async park(mode: SessionMode, signal: AbortSignal, id: string = newSessionId()): Promise<ParkedEntry> {
    const { parked, admission, driver, config, log } = this.deps;
    parked.add(id, mode);
    try {
      const made = await runParkWorkflow(
        id,
        mode,
        {
          driver,
          config,
          // A parked session holds its reservation like a live one, so the pool never takes room admission gave away.
          capacity: { reserve: (session, roles) => void admission.admit(session, roles), release: (session) => admission.release(session) },
          ...(this.deps.labels ? { labels: this.deps.labels } : {}),
          onNetwork: (network) => parked.setNetwork(id, network),
          onContainer: (c) => parked.addContainer(id, c),
        },
        { signal },
      );
      const entry = parked.markParked(id, made.location, made.containers);
      log.debug({ session: id, mode }, 'parked a session');
      return entry;
    } catch (err) {
      // Rolled back by the workflow (objects removed, reservation released); a failed undo leaves its objects to
      // discard, which lists the engine for this id.
      await this.discard(id, 'park failed').catch(() => undefined);
      throw err;
    }
  }

  /** Removes a parked session's objects, releases its reservation and drops its row; concurrent asks join. */
  discard(id: string, reason: string): Promise<void> {
    return this.discards.run(id, () => this.discardNow(id, reason));
  }

  discarding(id: string): boolean {
    return this.discards.has(id);
  }

  /** A parked row exists (parking, parked, or left by a discard that failed). */
  isParked(id: string): boolean {
    return this.deps.parked.get(id) !== undefined;
  }

  parkedIds(): string[] {
    return this.deps.parked.list().map((e) => e.id);
  }

  /** Parked entries as recorded, for the sweep's check of their containers. */
  entries(): ParkedEntry[] {
    return this.deps.parked.list();
  }

  /** Gives a parked session to `session` (same id): the session record with its objects, and no parked row. */
  claimRecords(entry: ParkedEntry, session: SessionSpec): void {
    const { store, parked } = this.deps;
    parked.claim(entry.id, () => {
      store.create(session);
      if (entry.network) store.update(session.id, { network: entry.network });
      for (const c of entry.containers) store.putContainer(session.id, { id: c.id, name: c.name, role: c.role, startedAt: null, finishedAt: null, exitCode: null, stats: null });
    });
  }

  /**
   * At start: a parked session whose containers all still run is adopted (its reservation restored, never
   * refused); one cut off while parking, or with a container gone or exited, is discarded.
   */
  async reconcile(managed: ManagedObjects): Promise<ParkedReconcileReport> {
    const report: ParkedReconcileReport = { adopted: [], discarded: [] };
    for (const entry of this.deps.parked.list()) {
      const running = managed.containers.filter((c: ContainerState) => c.session === entry.id && c.running);
      const whole = entry.state === 'parked' && entry.location !== null && rolesOf(entry.mode).every((role) => entry.containers.some((c) => c.role === role && running.some((r) => r.id === c.id)));
      if (whole) {
        this.deps.admission.adopt(entry.id, rolesOf(entry.mode));
        report.adopted.push(entry);
      } else {
        await this.discard(entry.id, entry.state === 'parking' ? 'daemon restarted while parking' : 'a parked container ended while the daemon was down').catch((err: Error) =>
          this.deps.log.warn({ session: entry.id, err: err.message }, 'could not discard a parked session; the sweep retries'),
        );
        report.discarded.push(entry.id);
      }
    }
    return report;
  }

  /**
   * True when a container of this session still waits for its parameters: a claim cut off by a crash before every
   * line was handed out. Such a session must be rolled back, not adopted because its containers all run.
   */
  async anyStillParked(containerIds: readonly string[]): Promise<boolean> {
    const outputs = await Promise.all(containerIds.map((id) => this.deps.driver.logs(id, 20).catch(() => '')));
    return outputs.some((out) => {
      const events = out.split('\n').map((l) => parseEventLine(l)?.event);
      return events.includes('parked') && !events.includes('ready');
    });
  }

  /** The objects of a parked entry as the claim workflow takes them. */
  static objectsOf(entry: ParkedEntry): ParkedObjects {
    if (!entry.network || !entry.location) throw new Error(`parked session ${entry.id} is not complete (state ${entry.state})`);
    return { id: entry.id, mode: entry.mode, network: entry.network, containers: entry.containers, location: entry.location };
  }

  private async discardNow(id: string, reason: string): Promise<void> {
    const { driver, parked, admission, log } = this.deps;
    const entry = parked.get(id);
    // The engine is the authority: an object made just before a crash may be unrecorded.
    let listed: ManagedObjects = { containers: [], networks: [] };
    try {
      listed = await driver.listManaged();
    } catch (err) {
      log.warn({ session: id, err: (err as Error).message }, 'listing a parked session objects failed; using its row');
    }
    const containers = new Set([...(entry?.containers.map((c) => c.id) ?? []), ...listed.containers.filter((c) => c.session === id).map((c) => c.id)]);
    const networks = new Set([...(entry?.network ? [entry.network.id] : []), ...listed.networks.filter((n) => n.session === id).map((n) => n.id)]);
    const removals = await Promise.allSettled([...containers].map((c) => driver.removeContainer(c)));
    for (const nid of networks) removals.push(...(await Promise.allSettled([driver.removeNetwork(nid)])));
    admission.release(id);
    const failed = removals.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length) {
      // The row stays, so the sweep finds the leftovers as parked objects and asks again.
      log.warn({ session: id, reason, err: (failed[0]!.reason as Error).message }, 'discarding a parked session left objects behind');
      return;
    }
    parked.remove(id);
    log.info({ session: id, mode: entry?.mode, reason }, 'discarded a parked session');
  }
}

/**
 * The composition root: builds everything behind the daemon's op registry from the config, in start-up order
 * (runtime, emulators, records, resources, admission, session lifecycle, reconcile, reaper, sweep), and closes it
 * in reverse. Nothing imports this file but the CLI's daemon command (and tests of it).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseObjectLabels, type Config } from './config.js';
import { OpRegistry } from './ops/contract.js';
import { resourceOps } from './ops/resource-ops.js';
import { sessionOps } from './ops/session-ops.js';
import { Admission, admissionOptions } from './resources/admission.js';
import { ResourceTracker } from './resources/tracker.js';
import { createRuntime } from './runtime/create-runtime.js';
import { Metrics, metricsOp } from './metrics/metrics.js';
import { SessionBus } from './sessions/events.js';
import { SessionLifecycle } from './sessions/lifecycle.js';
import { Reaper } from './sessions/reaper.js';
import { scopeToInstance } from './sessions/instance.js';
import { reconcile } from './sessions/reconcile.js';
import { openSessionStore, SESSION_DB_FILE } from './sessions/sqlite-store.js';
import { SqliteParkedStore } from './sessions/parked-store.js';
import { SessionPool } from './sessions/pool.js';
import { LIVE_STATES, TERMINAL_STATES } from './sessions/types.js';
import { ObjectAges, Sweep } from './sessions/sweep.js';

export interface Ops {
  registry: OpRegistry;
  /** The runtime serving sessions (docker | local), named in hello and resources; absent for core ops only. */
  runtime?: string;
  /** Absent for core-only daemons; the daemon command adds the connection metrics and the HTTP listener. */
  metrics?: Metrics;
  /** The instance id this daemon labels its objects with (absent when it drives no runtime). */
  instance?: string;
  close(): Promise<void>;
}

/** No ops beyond the core ones the daemon itself answers (hello, ping, cancel): for daemons that drive no runtime. */
export function createCoreOps(): Ops {
  return { registry: new OpRegistry(), close: async () => undefined };
}

export async function createOps(config: Config, log: Logger): Promise<Ops> {
  const runtime = await createRuntime(config, log);
  await runtime.check();
  if (config.buildImages) {
    const images = await runtime.prepare({});
    log.info({ runtime: runtime.name, built: images.built, present: images.present, base: images.base }, 'emulator images ready');
  }

  mkdirSync(config.dataDir, { recursive: true, mode: 0o750 });
  const store = openSessionStore(join(config.dataDir, SESSION_DB_FILE));
  const closers: Array<() => Promise<void> | void> = [() => store.close(), () => runtime.close?.()];
  try {
    const instance = store.instanceId();
    log.info({ instance, dataDir: config.dataDir }, 'instance');
    // Everything below sees only this instance's objects: another daemon on the same engine is never judged.
    const driver = await scopeToInstance({ driver: runtime.driver, store, instance, log });
    const bus = new SessionBus();
    // Bound once the pool exists (it needs the lifecycle, which needs the tracker's admission): parked containers are
    // not sampled, and scheduled samples wait for the claims under way.
    let pooled: SessionPool | null = null;
    const tracker = new ResourceTracker({
      driver,
      dataDir: config.dataDir,
      cron: config.resourcesCron,
      log: log.child({ component: 'resources' }),
      unsampled: (session) => pooled?.has(session) ?? false,
      beforeScheduled: () => pooled?.claimsEnded() ?? Promise.resolve(),
    });
    await tracker.start();
    closers.unshift(() => tracker.stop());
    const admission = new Admission(admissionOptions(config, () => tracker.availableMemory()));
    const sessionLog = log.child({ component: 'sessions' });
    const labels = parseObjectLabels(config.objectLabels);
    const lifecycle = new SessionLifecycle({ driver, store, bus, admission, config, log: sessionLog, labels, parked: new SqliteParkedStore(store.db) });
    // Built even with both sizes 0: a restart with a smaller pool setting must still clean what was parked.
    const pool = new SessionPool(lifecycle.parking!, config, log.child({ component: 'pool' }));
    lifecycle.usePool(pool);
    pooled = pool;
    const ages = new ObjectAges();
    // A session's usage is sampled as it turns ready and dropped as it ends, not left to the next scheduled sample.
    // The sample (a listing and a stats call per container) waits for the claims under way, and the sessions that
    // turned ready meanwhile share one: during a burst it took the engine's time from the claims still waiting.
    const toSample = new Set<string>();
    const sampleReady = (): void => {
      const sessions = [...toSample];
      toSample.clear();
      if (sessions.length) tracker.sampleSessions(sessions).catch((err: Error) => sessionLog.debug({ sessions, err: err.message }, 'usage at ready not sampled'));
    };
    closers.unshift(
      bus.subscribe(null, (update) => {
        if (!update.record) return;
        if (update.state === 'ready') {
          toSample.add(update.id);
          if (toSample.size === 1) pool.afterClaims(sampleReady);
        } else if (TERMINAL_STATES.includes(update.state)) {
          toSample.delete(update.id);
          tracker.forget(update.id);
          pool.roomFreed();
        }
      }),
    );
    const reaper = new Reaper({ driver, store, finisher: lifecycle, log: sessionLog, bus, parked: pool });
    // before reconcile, so what it finishes is counted
    const metrics = new Metrics({ bus, liveSessions: () => store.list({ states: LIVE_STATES }), onEngineStream: (listener) => reaper.onStream(listener) });
    closers.unshift(() => metrics.close());

    await reconcile({ driver, store, lifecycle, settings: config, log: sessionLog, ages, parked: pool });
    reaper.start();
    closers.unshift(() => reaper.stop());
    const sweep = new Sweep({ driver, store, finisher: lifecycle, settings: config, cron: config.sweepCron, log: sessionLog, ages, admission, parked: pool });
    sweep.start();
    closers.unshift(() => sweep.stop());
    // Back from an engine outage (dockerd restarted): sweep now instead of at the next cron tick, so objects whose
    // removal failed while the engine was going down are removed as soon as it answers again.
    let broken = false;
    const unsubscribe = reaper.onStream((e) => {
      if (e.type === 'stream-error') broken = true;
      else if (broken) {
        broken = false;
        sweep.tick().catch((err: Error) => sessionLog.warn({ err: err.message }, 'sweep after reconnect failed'));
      }
    });
    closers.unshift(unsubscribe);
    closers.unshift(() => lifecycle.shutdown(config.stopSessionsOnShutdown).then(() => undefined));
    pool.start();
    closers.unshift(() => pool.stop(config.stopSessionsOnShutdown));

    const registry = new OpRegistry();
    const usage = (session: string) => tracker.latest()?.sessions.find((s) => s.session === session);
    for (const op of sessionOps({ lifecycle, store, config, usage })) registry.register(op);
    const nodes = driver.nodes ? () => driver.nodes!() : undefined;
    for (const op of resourceOps({ tracker, admission, instance, pool, ...(nodes ? { nodes } : {}) })) registry.register(op);
    registry.register(metricsOp(metrics));
    return { registry, runtime: runtime.name, metrics, instance, close: () => closeAll(closers, log) };
  } catch (err) {
    await closeAll(closers, log);
    throw err;
  }
}

async function closeAll(closers: Array<() => Promise<void> | void>, log: Logger): Promise<void> {
  for (const close of closers) {
    try {
      await close();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'closing failed');
    }
  }
}

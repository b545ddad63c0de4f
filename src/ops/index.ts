/**
 * The composition root: builds everything behind the op registry from the config, in start-up order
 * (engine, images, records, resources, admission, reconcile, reaper, sweep), and closes it in reverse.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EdgeechoError } from '../../protocol/errors.js';
import { parseObjectLabels, type Config } from '../config.js';
import { OpRegistry } from '../daemon/op-registry.js';
import { Admission, admissionOptions } from '../resources/admission.js';
import { ResourceTracker } from '../resources/tracker.js';
import { DockerDriver } from '../runtime/docker/driver.js';
import { ensureEmulatorImages } from '../runtime/docker/images.js';
import { SessionBus } from '../sessions/events.js';
import { FinishOnce, Reaper, teardownFinish } from '../sessions/reaper.js';
import { reconcile, shutdownSessions } from '../sessions/reconcile.js';
import { openSessionStore, SESSION_DB_FILE } from '../sessions/sqlite-store.js';
import { ObjectAges, Sweep } from '../sessions/sweep.js';
import { registerCoreOps } from './core-ops.js';
import { resourceOps } from './resource-ops.js';
import { sessionOps } from './session-ops.js';

export interface Ops {
  registry: OpRegistry;
  close(): Promise<void>;
}

/** Core ops only (hello, ping, cancel): for daemons and tests that drive no runtime. */
export function createCoreOps(): Ops {
  return { registry: registerCoreOps(new OpRegistry()), close: async () => undefined };
}

export async function createOps(config: Config, log: Logger): Promise<Ops> {
  const driver = DockerDriver.fromConfig(config, log.child({ component: 'runtime' }));
  try {
    await driver.ping(AbortSignal.timeout(10_000));
  } catch (err) {
    throw new EdgeechoError(
      'RUNTIME_UNAVAILABLE',
      `no Docker engine answers at ${config.dockerSocket} (EDGEECHO_DOCKER_SOCKET): ${(err as Error).message}; start dockerd or point EDGEECHO_DOCKER_SOCKET at it`,
      undefined,
      { cause: err },
    );
  }
  if (config.buildImages) {
    const images = await ensureEmulatorImages(driver.docker, { config, log: log.child({ component: 'images' }) });
    log.info({ built: images.built, present: images.present, base: images.base }, 'emulator images ready');
  }

  mkdirSync(config.dataDir, { recursive: true, mode: 0o750 });
  const store = openSessionStore(join(config.dataDir, SESSION_DB_FILE));
  const closers: Array<() => Promise<void> | void> = [() => store.close()];
  try {
    const bus = new SessionBus();
    const tracker = new ResourceTracker({ driver, dataDir: config.dataDir, cron: config.resourcesCron, log: log.child({ component: 'resources' }) });
    await tracker.start();
    closers.unshift(() => tracker.stop());
    const admission = new Admission(admissionOptions(config, () => tracker.availableMemory()));
    const release = (session: string): void => admission.release(session);
    const sessionLog = log.child({ component: 'sessions' });
    const finisher = new FinishOnce(teardownFinish({ driver, store, bus, log: sessionLog, config, release }));
    const ages = new ObjectAges();

    await reconcile({ driver, store, finisher, settings: config, log: sessionLog, admission, ages });
    const reaper = new Reaper({ driver, store, finisher, log: sessionLog, bus });
    reaper.start();
    closers.unshift(() => reaper.stop());
    const sweep = new Sweep({ driver, store, finisher, settings: config, cron: config.sweepCron, log: sessionLog, ages, admission });
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
    closers.unshift(async () => {
      await shutdownSessions({ store, finisher, stopSessionsOnShutdown: config.stopSessionsOnShutdown, log: sessionLog });
      await finisher.idle();
    });

    const registry = registerCoreOps(new OpRegistry());
    const usage = (session: string) => tracker.latest()?.sessions.find((s) => s.session === session);
    const labels = parseObjectLabels(config.objectLabels);
    for (const op of sessionOps({ driver, store, bus, config, log: sessionLog, admit: (s, roles) => admission.admit(s, roles), release, usage, labels })) registry.register(op);
    for (const op of resourceOps({ tracker, admission })) registry.register(op);
    return { registry, close: () => closeAll(closers, log) };
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

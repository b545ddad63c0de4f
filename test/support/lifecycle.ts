/** A SessionLifecycle for tests: the default config (with the overrides given) and, unless one is passed, an admission that admits everything. */
import type { Logger } from 'pino';
import { loadConfig, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import type { RuntimeDriver } from '../../src/runtime/driver.js';
import { SessionBus } from '../../src/sessions/events.js';
import { SessionLifecycle, type LifecycleDeps } from '../../src/sessions/lifecycle.js';
import type { SessionStore } from '../../src/sessions/types.js';

export const ADMIT_ALL: LifecycleDeps['admission'] = { admit: () => undefined, release: () => undefined, adopt: () => undefined };

export function testLifecycle(options: {
  driver: RuntimeDriver;
  store: SessionStore;
  bus?: SessionBus;
  admission?: LifecycleDeps['admission'];
  config?: Partial<Config>;
  labels?: Record<string, string>;
  startOrder?: LifecycleDeps['startOrder'];
  log?: Logger;
}): SessionLifecycle {
  const config = { ...loadConfig({ env: {} }).config, ...options.config };
  return new SessionLifecycle({
    driver: options.driver,
    store: options.store,
    bus: options.bus ?? new SessionBus(),
    admission: options.admission ?? ADMIT_ALL,
    config,
    log: options.log ?? silentLogger,
    ...(options.labels ? { labels: options.labels } : {}),
    ...(options.startOrder ? { startOrder: options.startOrder } : {}),
  });
}

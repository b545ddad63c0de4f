/**
 * This daemon's instance at start-up: its id from the records, and the runtime seen through its scope. Objects of
 * the version before instances (no instance label) are adopted when these records know their session, and left
 * alone, with a warning saying how to remove them by hand, when they do not.
 */
import type { Logger } from 'pino';
import type { RuntimeDriver } from '../runtime/driver.js';
import { claimLegacy, InstanceScope } from '../runtime/instance-scope.js';
import type { SessionStore } from './types.js';

export async function scopeToInstance(options: { driver: RuntimeDriver; store: Pick<SessionStore, 'get'>; instance: string; log: Logger }): Promise<InstanceScope> {
  const { driver, store, instance, log } = options;
  const all = await driver.listManaged();
  const legacy = claimLegacy(all, (session) => store.get(session) !== undefined);
  const scope = new InstanceScope(driver, { instance, adopted: legacy.adopted });
  if (legacy.adopted.size) {
    log.info({ sessions: [...legacy.adopted] }, 'objects without an instance label that these records claim are treated as this instance\'s');
  }
  const { containers, networks } = legacy.unclaimed;
  if (containers.length || networks.length) {
    log.warn(
      { containers, networks },
      'objects without an instance label (made by an edgeecho before instances) that no record here claims: left alone; README "Instances" shows how to remove them by hand',
    );
  }
  return scope;
}

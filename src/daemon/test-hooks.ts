/**
 * Test-only faults, off unless the daemon's environment has EDGEECHO_TEST_HOOKS=1 (never a flag, never an op:
 * nothing on the wire reaches them). With it, SIGUSR2 blocks the event loop for good, so tests under a real
 * systemd can check that WatchdogSec kills and restarts a daemon that stopped answering
 * (test/systemd/service-unit.test.ts). Not in the settings table on purpose: no operator should set it.
 */
import type { Logger } from 'pino';

export const TEST_HOOKS_ENV = 'EDGEECHO_TEST_HOOKS';

/** Installs the hooks when enabled; returns whether it did. */
export function installTestHooks(env: NodeJS.ProcessEnv, log: Logger): boolean {
  if (env[TEST_HOOKS_ENV] !== '1') return false;
  log.warn({ hooks: ['SIGUSR2: block the event loop'] }, `${TEST_HOOKS_ENV}=1: test hooks installed`);
  process.on('SIGUSR2', () => {
    log.warn('SIGUSR2 (test hook): blocking the event loop until killed');
    log.flush?.();
    // Atomics.wait blocks the main thread without spinning a core: no timer, ping or socket runs again.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  });
  return true;
}

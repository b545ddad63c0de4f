/**
 * The local runtime: sessions as child processes of the host's node, for machines without a Docker engine
 * (a laptop, an edge board, an unprivileged CI job). prepare() bundles the emulators into the data dir, the same
 * bundle the images carry; check() makes sure this host can run it (Linux /proc, a writable data dir).
 */
import { accessSync, constants, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EdgeechoError } from '../../../protocol/errors.js';
import type { Config } from '../../config.js';
import type { Runtime } from '../driver.js';
import { bundleEmulators, ROLES } from '../emulator-bundle.js';
import { LocalDriver } from './driver.js';
import { localLayout } from './layout.js';
import { EXIT_RECORDER_SOURCE } from './spawn-role.js';

export type LocalRuntimeConfig = Pick<Config, 'dataDir' | 'publishHost'>;

export function localRuntime(config: LocalRuntimeConfig, log: Logger): Runtime & { driver: LocalDriver } {
  const layout = localLayout(config.dataDir);
  const driver = new LocalDriver({ layout, publishHost: config.publishHost, log: log.child({ component: 'runtime' }) });
  return {
    driver,
    close: () => driver.close(),
    async check() {
      if (process.platform !== 'linux' || !existsSync('/proc/self/stat')) {
        throw new EdgeechoError('RUNTIME_UNAVAILABLE', `the local runtime needs Linux /proc to track its processes (platform ${process.platform}); use EDGEECHO_RUNTIME=docker`);
      }
      try {
        mkdirSync(layout.sessions, { recursive: true, mode: 0o750 });
        accessSync(layout.root, constants.W_OK);
      } catch (err) {
        throw new EdgeechoError('RUNTIME_UNAVAILABLE', `the local runtime keeps its processes' records under ${layout.root} (EDGEECHO_DATA_DIR), which is not writable: ${(err as Error).message}`);
      }
      await driver.ping();
    },
    async prepare() {
      const t0 = performance.now();
      mkdirSync(layout.root, { recursive: true, mode: 0o750 });
      // Bundled beside, then renamed into place: processes adopted from the last run keep the files they loaded.
      const staging = await mkdtemp(join(layout.root, 'emulators-'));
      try {
        const { files } = await bundleEmulators(staging);
        writeFileSync(join(staging, 'exit-recorder.cjs'), EXIT_RECORDER_SOURCE);
        mkdirSync(layout.emulators, { recursive: true, mode: 0o750 });
        for (const role of ROLES) renameSync(files[role], layout.script(role));
        renameSync(join(staging, 'exit-recorder.cjs'), layout.exitRecorder);
      } finally {
        rmSync(staging, { recursive: true, force: true });
      }
      const durationMs = performance.now() - t0;
      log.child({ component: 'images' }).debug({ dir: layout.emulators, duration_ms: Math.round(durationMs) }, 'bundled the emulators for the local runtime');
      return { built: ROLES.map((role) => ({ role, image: layout.script(role) })), present: [], durationMs };
    },
  };
}

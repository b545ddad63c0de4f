/** The Docker runtime: the dockerode driver, the engine check and the emulator images built on the engine. */
import type { Logger } from 'pino';
import { EdgeechoError } from '../../../protocol/errors.js';
import type { Config } from '../../config.js';
import type { Runtime } from '../driver.js';
import { DockerDriver } from './driver.js';
import { buildEmulatorImages } from './images.js';

export type DockerRuntimeConfig = Pick<Config, 'dockerSocket' | 'subnetPool' | 'subnetPrefix' | 'imageProbe' | 'imageStream' | 'imageSegmentation' | 'baseImage'>;

export function dockerRuntime(config: DockerRuntimeConfig, log: Logger): Runtime {
  const driver = DockerDriver.fromConfig(config, log.child({ component: 'runtime' }));
  return {
    driver,
    async check(signal = AbortSignal.timeout(10_000)) {
      try {
        await driver.ping(signal);
      } catch (err) {
        throw new EdgeechoError(
          'RUNTIME_UNAVAILABLE',
          `no Docker engine answers at ${config.dockerSocket} (EDGEECHO_DOCKER_SOCKET): ${(err as Error).message}; start dockerd or point EDGEECHO_DOCKER_SOCKET at it`,
          undefined,
          { cause: err },
        );
      }
    },
    prepare: ({ force }) => buildEmulatorImages(driver.docker, { config, log: log.child({ component: 'images' }), force: force === true }),
  };
}

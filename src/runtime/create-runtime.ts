/** Config -> the runtime that serves sessions. Docker is the one runtime today; local processes and Swarm plug in here. */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { dockerRuntime } from './docker/docker-runtime.js';
import type { Runtime } from './driver.js';

export function createRuntime(config: Config, log: Logger): Runtime {
  return dockerRuntime(config, log);
}

/**
 * Config -> the runtime that serves sessions. EDGEECHO_RUNTIME=docker, =local and =swarm are taken as asked (docker
 * without an engine, or swarm on an engine that is no swarm manager, is refused at check()); auto never picks swarm
 * (a cluster is an operator's decision) and uses Docker when an engine answers now and the local runtime
 * otherwise, and says which and why at warn level, so the choice is never silent.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { dockerRuntime } from './docker/docker-runtime.js';
import type { Runtime } from './driver.js';
import { localRuntime } from './local/local-runtime.js';
import { swarmRuntime } from './swarm/swarm-runtime.js';

/** How long auto waits for the Docker engine to answer before choosing the local runtime. */
export const AUTO_PING_TIMEOUT_MS = 2_000;

export type RuntimeChoice = Runtime & { readonly name: 'docker' | 'local' | 'swarm'; readonly reason: string };

export async function createRuntime(config: Config, log: Logger): Promise<RuntimeChoice> {
  if (config.runtime === 'local') return { ...localRuntime(config, log), name: 'local', reason: 'EDGEECHO_RUNTIME=local' };
  if (config.runtime === 'swarm') return { ...swarmRuntime(config, log), name: 'swarm', reason: 'EDGEECHO_RUNTIME=swarm' };
  const docker = dockerRuntime(config, log);
  if (config.runtime === 'docker') return { ...docker, name: 'docker', reason: 'EDGEECHO_RUNTIME=docker' };
  try {
    await docker.check(AbortSignal.timeout(AUTO_PING_TIMEOUT_MS));
  } catch (err) {
    const reason = `EDGEECHO_RUNTIME=auto: ${(err as Error).message.split(';')[0]}; serving sessions as local processes`;
    log.warn({ runtime: 'local', reason }, 'runtime: local (no Docker engine answers)');
    return { ...localRuntime(config, log), name: 'local', reason };
  }
  const reason = `EDGEECHO_RUNTIME=auto: the Docker engine at ${config.dockerSocket} answers`;
  log.warn({ runtime: 'docker', reason }, 'runtime: docker (an engine answers)');
  return { ...docker, name: 'docker', reason };
}

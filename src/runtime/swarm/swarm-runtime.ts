/**
 * The swarm runtime: the swarm driver on a manager's engine, a check that the engine is a swarm manager, and the
 * emulator images built on this node (the others need them too: README "Swarm runtime").
 */
import type { Logger } from 'pino';
import { EdgeechoError } from '../../../protocol/errors.js';
import type { Config } from '../../config.js';
import type { Runtime } from '../driver.js';
import { buildEmulatorImages } from '../docker/images.js';
import { SwarmDriver } from './driver.js';
import { parsePortRange } from './host-ports.js';
import { parseConstraints } from './placement.js';

export type SwarmRuntimeConfig = Pick<
  Config,
  | 'dockerSocket'
  | 'subnetPool'
  | 'subnetPrefix'
  | 'imageProbe'
  | 'imageStream'
  | 'imageSegmentation'
  | 'baseImage'
  | 'stopTimeoutS'
  | 'swarmEndpointMode'
  | 'swarmConstraints'
  | 'swarmCpuRatio'
  | 'swarmPollMs'
  | 'swarmPorts'
  | 'publishHost'
>;

/** A reference naming no registry host resolves to Docker Hub (`edgeecho/probe:0.1.0`, not `registry:5000/...`). */
export function onDockerHub(image: string): boolean {
  const first = image.split('/')[0]!;
  return !image.includes('/') || !(first.includes('.') || first.includes(':') || first === 'localhost');
}

export function swarmRuntime(config: SwarmRuntimeConfig, log: Logger): Runtime & { driver: SwarmDriver } {
  const driver = new SwarmDriver({
    socketPath: config.dockerSocket,
    subnetPool: config.subnetPool,
    subnetPrefix: config.subnetPrefix,
    endpointMode: config.swarmEndpointMode as 'dnsrr' | 'vip',
    stopGraceS: config.stopTimeoutS,
    constraints: parseConstraints(config.swarmConstraints),
    cpuRatio: config.swarmCpuRatio,
    pollMs: config.swarmPollMs,
    ports: parsePortRange(config.swarmPorts),
    log: log.child({ component: 'runtime' }),
  });
  return {
    driver,
    close: () => driver.close(),
    async check(signal = AbortSignal.timeout(10_000)) {
      let swarm: Awaited<ReturnType<SwarmDriver['swarmInfo']>>;
      try {
        await driver.ping(signal);
        swarm = await driver.swarmInfo();
      } catch (err) {
        throw new EdgeechoError(
          'RUNTIME_UNAVAILABLE',
          `no Docker engine answers at ${config.dockerSocket} (EDGEECHO_DOCKER_SOCKET): ${(err as Error).message}; the swarm runtime runs on a swarm manager's engine`,
          undefined,
          { cause: err },
        );
      }
      if (swarm.state !== 'active') {
        throw new EdgeechoError('RUNTIME_UNAVAILABLE', `the engine at ${config.dockerSocket} is not in a swarm (state ${swarm.state}): run \`docker swarm init\` (or join this node to a swarm as a manager), or use EDGEECHO_RUNTIME=docker`);
      }
      if (!swarm.manager) {
        throw new EdgeechoError('RUNTIME_UNAVAILABLE', `the engine at ${config.dockerSocket} is a swarm worker: the swarm runtime needs a manager (\`docker node promote\` this node, or run the daemon on a manager)`);
      }
      const hubNames = [config.imageProbe, config.imageStream, config.imageSegmentation].filter(onDockerHub);
      if (hubNames.length) {
        log.warn(
          { images: hubNames },
          'swarm runtime: these images name no registry, so a node whose dockerd lacks DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 pulls each of them from Docker Hub before every task, even when it holds the image (README "Swarm runtime": a registry in EDGEECHO_IMAGE_*, or that variable on every node)',
        );
      }
      log.warn({ publish_host: config.publishHost }, 'swarm runtime: streams are published in host mode on every address of their node; EDGEECHO_PUBLISH_HOST does not apply');
    },
    prepare: ({ force }) => buildEmulatorImages(driver.docker, { config, log: log.child({ component: 'images' }), force: force === true }),
  };
}

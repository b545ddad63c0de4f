/**
 * The swarm runtime under the conformance suite: a single-node swarm on the test engine (support/swarm-mode.ts
 * makes one when asked and leaves it at exit), sessions kept on this node by a placement label of the run's own.
 * What is left of a daemon's sessions is read from the manager: services, their task containers and networks.
 */
import type Docker from 'dockerode';
import { TEST_LABEL } from '../../support/daemon-process.js';
import { baseImage, leftovers, TEST_SUBNET_POOL } from '../../support/reaping-fixtures.js';
import { ensureSwarm, labelledSwarmObjects, removeLabelledSwarm } from '../../support/swarm-mode.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { ensureEmulatorImages } from '../../src/runtime/docker/images.js';
import { LABEL_SESSION } from '../../src/runtime/driver.js';
import { InstanceScope } from '../../src/runtime/instance-scope.js';
import { SwarmDriver } from '../../src/runtime/swarm/driver.js';
import { nodeAddress, type SwarmNode } from '../../src/runtime/swarm/swarm-objects.js';
import { newInstanceId } from '../../src/sessions/session-id.js';
import type { RuntimeUnderTest } from './runtimes.js';

const { config } = loadConfig({ env: {} });

/** null when the engine is in no swarm and `initialise` is false. */
export async function swarmUnderTest(docker: Docker, options: { initialise: boolean }): Promise<RuntimeUnderTest | null> {
  const state = ((await docker.info()) as { Swarm?: { LocalNodeState?: string } }).Swarm?.LocalNodeState;
  if (state !== 'active' && !options.initialise) return null;
  const swarm = await ensureSwarm(docker);
  await ensureEmulatorImages(docker, { config, log: silentLogger });
  const make = (subnetPool: string): SwarmDriver =>
    new SwarmDriver({
      docker,
      subnetPool,
      subnetPrefix: config.subnetPrefix,
      endpointMode: 'dnsrr',
      // A service carries its stop grace from creation (the stop call's timeout cannot change it): the suite's
      // stop tests ask for 1 s.
      stopGraceS: 1,
      constraints: [{ ...swarm.placement, equal: true }],
      cpuRatio: config.swarmCpuRatio,
      pollMs: config.swarmPollMs,
      log: silentLogger,
    });
  const drivers: SwarmDriver[] = [];
  const driver = make(config.subnetPool);
  const scoped = (instance: string): InstanceScope => {
    const inner = make(TEST_SUBNET_POOL);
    drivers.push(inner);
    return new InstanceScope(inner, { instance });
  };
  return {
    name: 'swarm',
    driver,
    publishedHost: async () => nodeAddress((await docker.getNode(swarm.nodeId).inspect()) as SwarmNode),
    freshDriver: (instance = newInstanceId()) => scoped(instance),
    fixtureImage: await baseImage(docker),
    fixtureDriver: scoped(newInstanceId()),
    leftovers: (session, via = driver) => leftovers(via, session),
    // As for Docker: node cannot start in 6 MiB; the task's container is killed before its ready line.
    exitBeforeReady: { overrides: { limitsProbe: { memoryBytes: 6 * 1024 * 1024, nanoCpus: 500_000_000, pids: 64 } }, role: 'probe' },
    daemonEnv: { EDGEECHO_RUNTIME: 'swarm', EDGEECHO_SWARM_CONSTRAINTS: swarm.constraint },
    daemonLeftovers: (label, _dir, sessions) => labelledSwarmObjects(docker, TEST_LABEL, label, LABEL_SESSION, sessions),
    cleanupDaemonObjects: (label) => removeLabelledSwarm(docker, TEST_LABEL, label),
    async close() {
      driver.close();
      for (const d of drivers) d.close();
    },
  };
}

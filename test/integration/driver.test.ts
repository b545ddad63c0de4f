/**
 * What only the DockerDriver does, against the real engine: container hardening, subnets, engine error mapping.
 * The driver contract every runtime shares (readiness, stop, events, stats, logs) is runtime-conformance/driver.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dockerOrSkip } from '../support/docker.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { DockerDriver } from '../../src/runtime/docker/driver.js';
import { ensureEmulatorImages } from '../../src/runtime/docker/images.js';
import { LABEL_SESSION, type ContainerSpec, type NetworkRef } from '../../src/runtime/driver.js';
import { newSessionId } from '../../src/sessions/session-id.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { nodeRoleSpec } from '../runtime-conformance/runtimes.js';

const docker = await dockerOrSkip('integration/driver');

if (docker) {
  const { config } = loadConfig({ env: {} });
  await ensureEmulatorImages(docker, { config, log: silentLogger });
  const labels = { 'io.edgeecho.test': 'workflow' };
  const sessions = new Set<string>();

  const cleanup = async (): Promise<void> => {
    for (const id of sessions) {
      const filters = { label: [`${LABEL_SESSION}=${id}`] };
      for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
      for (const n of await docker.listNetworks({ filters })) await docker.getNetwork(n.Id).remove().catch(() => {});
    }
  };
  const spec = (session: string, network: NetworkRef, script: string): ContainerSpec => nodeRoleSpec(session, network, script, config);

  test('hardened container: init, read-only root, no capabilities, memory limit, uid 1000', async () => {
    const driver = new DockerDriver({ docker, subnetPool: config.subnetPool, subnetPrefix: config.subnetPrefix });
    const session = newSessionId();
    sessions.add(session);
    try {
      const network = await driver.createNetwork({ session, name: `edgeecho-${session}-net`, labels });
      assert.match(network.subnet, /^10\.213\./);
      const ref = await driver.createContainer(spec(session, network, `console.log(JSON.stringify({event:'ready',role:'probe',uid:process.getuid()})); setInterval(() => {}, 1e6)`));
      await driver.startContainer(ref.id);
      assert.equal(await driver.waitReady(ref.id, { timeoutMs: 10_000 }), { event: 'ready', role: 'probe', uid: 1000 });
      const info = await docker.getContainer(ref.id).inspect();
      assert.is(info.HostConfig.Init, true);
      assert.is(info.HostConfig.ReadonlyRootfs, true);
      assert.equal(info.HostConfig.CapDrop, ['ALL']);
      assert.equal(info.HostConfig.SecurityOpt, ['no-new-privileges']);
      assert.is(info.HostConfig.Memory, config.limitsProbe.memoryBytes);
      await driver.removeContainer(ref.id);
      await driver.removeNetwork(network.id);
      assert.not.ok(driver.subnets.isUsed(network.subnet));
    } finally {
      await cleanup();
    }
  });

  test('a subnet taken outside the driver is skipped (Pool overlaps); engine errors keep their codes', async () => {
    const driver = new DockerDriver({ docker, subnetPool: '10.214.0.0/24', subnetPrefix: 28 });
    const outsider = newSessionId();
    const session = newSessionId();
    sessions.add(outsider).add(session);
    try {
      // The driver has not looked at the networks yet; this one appears after it did.
      const first = await driver.createNetwork({ session: outsider, name: `edgeecho-${outsider}-net`, labels });
      // The pool starts at a random subnet and goes round: the outsider takes the one it would pick next.
      const at = (index: number): string => `10.214.0.${(index % 16) * 16}/28`;
      const index = Number(first.subnet.split('.')[3]!.split('/')[0]) / 16;
      await docker.createNetwork({ Name: `edgeecho-${outsider}-raw`, Labels: { ...labels, [LABEL_SESSION]: outsider, 'io.edgeecho.managed': 'true' }, IPAM: { Driver: 'default', Config: [{ Subnet: at(index + 1) }] } });
      const network = await driver.createNetwork({ session, name: `edgeecho-${session}-net`, labels });
      assert.is(network.subnet, at(index + 2));
      const conflict = await driver.createNetwork({ session, name: `edgeecho-${session}-net`, labels }).then(
        () => null,
        (e: EdgeechoError) => e,
      );
      assert.ok(conflict && ['CONFLICT', 'RUNTIME_UNAVAILABLE'].includes(conflict.code), conflict?.message);
      const missing = await driver.inspectContainer('edgeecho-does-not-exist').then(
        () => null,
        (e: EdgeechoError) => e,
      );
      assert.is(missing?.code, 'NOT_FOUND');
    } finally {
      await cleanup();
    }
  });

  test('an unreachable engine is RUNTIME_UNAVAILABLE', async () => {
    const driver = new DockerDriver({ socketPath: '/nonexistent/docker.sock', subnetPool: config.subnetPool, subnetPrefix: 28 });
    const err = await driver.ping().then(
      () => null,
      (e: EdgeechoError) => e,
    );
    assert.is(err?.code, 'RUNTIME_UNAVAILABLE');
  });
}

test.run();

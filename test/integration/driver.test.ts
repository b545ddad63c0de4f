/** DockerDriver against the real engine: hardening, readiness, events, stats, subnets, error mapping. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dockerOrSkip } from '../support/docker.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { DockerDriver } from '../../src/runtime/docker/driver.js';
import { ensureEmulatorImages } from '../../src/runtime/docker/images.js';
import { LABEL_SESSION, type ContainerSpec, type NetworkRef, type RuntimeEvent } from '../../src/runtime/driver.js';
import { newSessionId } from '../../src/sessions/session-id.js';
import { EdgeechoError } from '../../protocol/errors.js';

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
  const spec = (session: string, network: NetworkRef, script: string): ContainerSpec => ({
    session,
    role: 'probe',
    name: `edgeecho-${session}-probe`,
    image: config.imageProbe,
    network,
    aliases: ['probe'],
    env: { HELLO: 'x' },
    labels,
    publish: { port: 7000, hostIp: '127.0.0.1' },
    limits: config.limitsProbe,
    command: ['node', '-e', script],
  });

  test('hardened container: ready line printed at once is caught; port published; stats; events; logs', async () => {
    const driver = new DockerDriver({ docker, subnetPool: config.subnetPool, subnetPrefix: config.subnetPrefix });
    const session = newSessionId();
    sessions.add(session);
    const events: RuntimeEvent[] = [];
    const controller = new AbortController();
    const since = Math.floor(Date.now() / 1000) - 1;
    try {
      const network = await driver.createNetwork({ session, name: `edgeecho-${session}-net`, labels });
      assert.match(network.subnet, /^10\.213\./);
      const script = `console.log(JSON.stringify({event:'ready',role:'probe',uid:process.getuid()})); require('net').createServer().listen(7000); process.on('SIGTERM', () => { console.log(JSON.stringify({event:'stats',role:'probe',lost:0})); process.exit(0); });`;
      const ref = await driver.createContainer(spec(session, network, script));
      await driver.startContainer(ref.id);
      const ready = await driver.waitReady(ref.id, { timeoutMs: 10_000 });
      assert.equal(ready, { event: 'ready', role: 'probe', uid: 1000 });
      const info = await docker.getContainer(ref.id).inspect();
      assert.is(info.HostConfig.Init, true);
      assert.is(info.HostConfig.ReadonlyRootfs, true);
      assert.equal(info.HostConfig.CapDrop, ['ALL']);
      assert.equal(info.HostConfig.SecurityOpt, ['no-new-privileges']);
      assert.is(info.HostConfig.Memory, config.limitsProbe.memoryBytes);
      const state = await driver.inspectContainer(ref.id);
      assert.is(state.session, session);
      assert.is(state.published?.host, '127.0.0.1');
      assert.ok(state.published!.port > 0);
      // The engine can answer an empty reading on a loaded machine: the driver says so instead of returning zeros.
      let usage = await driver.stats(ref.id).catch((err: EdgeechoError) => (assert.is(err.code, 'RUNTIME_UNAVAILABLE'), null));
      for (let i = 0; i < 30 && !usage; i++) usage = (await new Promise((r) => setTimeout(r, 500)), await driver.stats(ref.id).catch(() => null));
      assert.ok(usage, 'a real stats reading within 15 s');
      assert.ok(usage.memoryBytes > 0 && usage.memoryLimitBytes === config.limitsProbe.memoryBytes, JSON.stringify(usage));
      const managed = await driver.listManaged();
      assert.ok(managed.containers.some((c) => c.id === ref.id));
      assert.ok(managed.networks.some((n) => n.id === network.id && n.session === session));
      // SIGTERM reaches node through the init process
      await driver.stopContainer(ref.id, 5);
      const stopped = await driver.inspectContainer(ref.id);
      assert.is(stopped.exitCode, 0);
      assert.match(await driver.logs(ref.id, 10), '"event":"stats"');
      await driver.stopContainer(ref.id, 1); // already stopped: not an error
      await driver.removeContainer(ref.id);
      await driver.removeContainer(ref.id); // already gone: not an error
      await driver.removeNetwork(network.id);
      assert.not.ok(driver.subnets.isUsed(network.subnet));
      for await (const e of driver.events({ since, signal: controller.signal })) {
        if (e.session === session) events.push(e);
        if (e.session === session && e.action === 'destroy') break;
      }
      assert.ok(events.some((e) => e.action === 'die' && e.exitCode === 0 && e.role === 'probe'));
    } finally {
      controller.abort();
      await cleanup();
    }
  });

  test('exit before ready rejects with the exit code and stderr tail', async () => {
    const driver = new DockerDriver({ docker, subnetPool: config.subnetPool, subnetPrefix: config.subnetPrefix });
    const session = newSessionId();
    sessions.add(session);
    try {
      const network = await driver.createNetwork({ session, name: `edgeecho-${session}-net`, labels });
      const ref = await driver.createContainer(spec(session, network, `console.error('cannot bind: EADDRINUSE'); process.exit(3)`));
      await driver.startContainer(ref.id);
      const err = await driver.waitReady(ref.id, { timeoutMs: 10_000 }).then(
        () => null,
        (e: EdgeechoError) => e,
      );
      assert.match(err!.message, 'exited with code 3');
      assert.match(err!.message, 'cannot bind: EADDRINUSE');
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

/**
 * The Docker driver's subnet choice against an engine other daemons create networks on meanwhile: a "Pool
 * overlaps" answer makes it read the engine's networks again and pick around all of them; the retries are bounded.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type Docker from 'dockerode';
import { DockerDriver, MAX_SUBNET_ATTEMPTS } from '../../../src/runtime/docker/driver.js';
import { parseCidr } from '../../../src/runtime/docker/subnets.js';

/** Just the network calls of dockerode, over an in-memory engine that refuses overlapping subnets as dockerd does. */
function fakeEngine() {
  const networks: Array<{ Id: string; Name: string; IPAM: { Config: Array<{ Subnet: string }> } }> = [];
  let next = 1;
  const overlaps = (a: string, b: string): boolean => {
    const [x, y] = [parseCidr(a), parseCidr(b)];
    const [xs, xe] = [x.base, x.base + 2 ** (32 - x.prefix) - 1];
    const [ys, ye] = [y.base, y.base + 2 ** (32 - y.prefix) - 1];
    return xs <= ye && ys <= xe;
  };
  const engine = {
    networks,
    creates: 0,
    lists: 0,
    /** Another daemon's network, made behind the driver's back. */
    add(subnet: string): void {
      networks.push({ Id: `other${next++}`, Name: `other-${subnet}`, IPAM: { Config: [{ Subnet: subnet }] } });
    },
    async listNetworks() {
      engine.lists++;
      return networks.map((n) => ({ ...n }));
    },
    async createNetwork(options: { Name: string; IPAM: { Config: Array<{ Subnet: string }> } }) {
      engine.creates++;
      const subnet = options.IPAM.Config[0]!.Subnet;
      if (networks.some((n) => overlaps(n.IPAM.Config[0]!.Subnet, subnet))) {
        throw Object.assign(new Error('(HTTP code 403) unexpected - invalid pool request: Pool overlaps with other one on this address space'), {
          statusCode: 403,
          json: { message: 'invalid pool request: Pool overlaps with other one on this address space' },
        });
      }
      const id = `net${next++}`;
      networks.push({ Id: id, Name: options.Name, IPAM: { Config: [{ Subnet: subnet }] } });
      return { id };
    },
    getNetwork(id: string) {
      return {
        remove: async () => {
          const i = networks.findIndex((n) => n.Id === id);
          if (i >= 0) networks.splice(i, 1);
        },
      };
    },
  };
  return engine;
}

const spec = (session: string) => ({ session, name: `edgeecho-${session}-net`, labels: {} });

test('networks another daemon made after the first look are found on "Pool overlaps" and picked around', async () => {
  const engine = fakeEngine();
  const driver = new DockerDriver({ docker: engine as unknown as Docker, subnetPool: '10.0.0.0/24', subnetPrefix: 28 });
  const first = await driver.createNetwork(spec('a'));
  // Another daemon with the same pool fills every other subnet of it but one, away from where this one goes next.
  const firstIndex = (parseCidr(first.subnet).base & 255) / 16;
  const freeIndex = (firstIndex + 8) % 16;
  for (let i = 0; i < 16; i++) if (i !== firstIndex && i !== freeIndex) engine.add(`10.0.0.${i * 16}/28`);
  const creates = engine.creates;
  const second = await driver.createNetwork(spec('b'));
  assert.is(second.subnet, `10.0.0.${freeIndex * 16}/28`);
  assert.is(engine.creates - creates, 2, 'one overlap, then the one free subnet');
});

test('a pool that looks full is read again before giving up: a subnet another daemon freed meanwhile is used', async () => {
  const engine = fakeEngine();
  for (let i = 0; i < 4; i++) engine.add(`10.0.0.${i * 4}/30`);
  const driver = new DockerDriver({ docker: engine as unknown as Docker, subnetPool: '10.0.0.0/28', subnetPrefix: 30 });
  await driver.createNetwork(spec('a')).then(
    () => assert.unreachable('every subnet is taken'),
    (err: { code: string; message: string }) => {
      assert.is(err.code, 'RESOURCE_EXHAUSTED');
      assert.match(err.message, 'no free /30 subnet left in 10.0.0.0/28');
    },
  );
  engine.networks.splice(1, 1); // the other daemon removed 10.0.0.4/30
  const made = await driver.createNetwork(spec('a'));
  assert.is(made.subnet, '10.0.0.4/30');
  assert.is(engine.creates, 1, 'no create was tried while nothing was free');
});

test('a pool every create overlaps fails after a bounded number of attempts, naming the pool and what to do', async () => {
  const engine = fakeEngine();
  engine.createNetwork = async () => {
    engine.creates++;
    throw Object.assign(new Error('Pool overlaps'), { statusCode: 403, json: { message: 'invalid pool request: Pool overlaps with other one on this address space' } });
  };
  const driver = new DockerDriver({ docker: engine as unknown as Docker, subnetPool: '10.0.0.0/16', subnetPrefix: 28 });
  try {
    await driver.createNetwork(spec('a'));
    assert.unreachable('expected RESOURCE_EXHAUSTED');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'RESOURCE_EXHAUSTED');
    assert.match((err as Error).message, `${MAX_SUBNET_ATTEMPTS} subnets of 10.0.0.0/16 in a row overlapped`);
    assert.match((err as Error).message, 'EDGEECHO_SUBNET_POOL');
  }
  assert.is(engine.creates, MAX_SUBNET_ATTEMPTS);
  assert.is(driver.subnets.free, driver.subnets.size, 'no subnet stays held by the failed attempts');
});

test('other errors are not retried and free the subnet', async () => {
  const engine = fakeEngine();
  engine.createNetwork = async () => {
    engine.creates++;
    throw Object.assign(new Error('conflict'), { statusCode: 409, json: { message: 'network with name edgeecho-a-net already exists' } });
  };
  const driver = new DockerDriver({ docker: engine as unknown as Docker, subnetPool: '10.0.0.0/28', subnetPrefix: 30 });
  await driver.createNetwork(spec('a')).then(
    () => assert.unreachable(),
    (err: { code: string }) => assert.is(err.code, 'CONFLICT'),
  );
  assert.is(engine.creates, 1);
  assert.is(driver.subnets.free, 4);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LABEL_INSTANCE } from '../../src/runtime/driver.js';
import { claimLegacy, InstanceScope, ownerOf, partition } from '../../src/runtime/instance-scope.js';
import { FakeRuntime } from '../support/fake-runtime.js';

const SCOPE = { instance: 'aaaaaaaaaaaa', adopted: new Set(['legacy']) };

test('owner: the same instance is own, another is foreign, none is unlabelled unless the records claimed its session', () => {
  assert.is(ownerOf({ instance: 'aaaaaaaaaaaa', session: 's' }, SCOPE), 'own');
  assert.is(ownerOf({ instance: 'bbbbbbbbbbbb', session: 's' }, SCOPE), 'foreign');
  // A foreign object of a session id the records happen to claim stays foreign: the label decides first.
  assert.is(ownerOf({ instance: 'bbbbbbbbbbbb', session: 'legacy' }, SCOPE), 'foreign');
  assert.is(ownerOf({ session: 'legacy' }, SCOPE), 'own');
  assert.is(ownerOf({ session: 'other' }, SCOPE), 'unlabelled');
  assert.is(ownerOf({}, SCOPE), 'unlabelled');
  assert.is(ownerOf({ session: 'legacy' }, { instance: 'aaaaaaaaaaaa' }), 'unlabelled');
});

test('listManaged lists only this instance\'s objects and counts the others', async () => {
  const runtime = new FakeRuntime();
  runtime.addContainer('mine', 'probe', false, 'm1', SCOPE.instance);
  runtime.addContainer('mine', 'stream', true, 'm2', SCOPE.instance);
  runtime.addNetwork('mine', undefined, 'mnet', SCOPE.instance);
  runtime.addContainer('theirs', 'stream', true, 't1', 'bbbbbbbbbbbb');
  runtime.addContainer('theirs', 'probe', false, 't2', 'bbbbbbbbbbbb');
  runtime.addNetwork('theirs', undefined, 'tnet', 'bbbbbbbbbbbb');
  runtime.addContainer('legacy', 'stream', true, 'l1');
  runtime.addContainer('old', 'stream', true, 'o1');
  runtime.addNetwork('old', undefined, 'onet');
  const listed = await new InstanceScope(runtime, SCOPE).listManaged();
  assert.equal(listed.containers.map((c) => c.id).sort(), ['l1', 'm1', 'm2']);
  assert.equal(listed.networks.map((n) => n.id), ['mnet']);
  assert.equal(listed.outside, { foreign: { containers: 2, running: 1, networks: 1 }, unlabelled: { containers: 1, running: 1, networks: 1 } });
  assert.equal(partition({ containers: [], networks: [] }, SCOPE).outside, { foreign: { containers: 0, running: 0, networks: 0 }, unlabelled: { containers: 0, running: 0, networks: 0 } });
});

test('every network and container created through the scope carries its instance label, which no extra label can change', async () => {
  const runtime = new FakeRuntime();
  const scope = new InstanceScope(runtime, SCOPE);
  const network = await scope.createNetwork({ session: 's', name: 'edgeecho-s-net', labels: { [LABEL_INSTANCE]: 'bbbbbbbbbbbb' } });
  const c = await scope.createContainer({
    session: 's', role: 'probe', name: 'edgeecho-s-probe', image: 'i', network, aliases: [], env: {}, labels: { [LABEL_INSTANCE]: 'bbbbbbbbbbbb' }, limits: { memoryBytes: 1, nanoCpus: 1, pids: 8 },
  });
  assert.is(runtime.networks.get(network.id)!.instance, SCOPE.instance);
  assert.is(runtime.containers.get(c.id)!.labels[LABEL_INSTANCE], SCOPE.instance);
  assert.equal((await scope.listManaged()).containers.map((x) => x.id), [c.id]);
});

test('events of other instances and of unclaimed unlabelled objects are not passed on', async () => {
  const runtime = new FakeRuntime();
  runtime.addContainer('mine', 'stream', true, 'm', SCOPE.instance);
  runtime.addContainer('theirs', 'stream', true, 't', 'bbbbbbbbbbbb');
  runtime.addContainer('legacy', 'stream', true, 'l');
  runtime.addContainer('old', 'stream', true, 'o');
  const controller = new AbortController();
  const seen: string[] = [];
  const reading = (async () => {
    for await (const e of new InstanceScope(runtime, SCOPE).events({ signal: controller.signal })) {
      seen.push(e.id);
      if (seen.length === 2) controller.abort();
    }
  })();
  await runtime.subscribed(1);
  for (const id of ['t', 'o', 'm', 'l']) runtime.exit(id);
  await reading;
  assert.equal(seen, ['m', 'l']);
});

test('claimLegacy: unlabelled objects of sessions the records know are adopted, the rest listed by name; labelled ones are not its business', () => {
  const runtime = new FakeRuntime();
  runtime.addContainer('known', 'probe', true, 'k1');
  runtime.addNetwork('known', undefined, 'knet');
  runtime.addContainer('unknown', 'probe', true, 'u1');
  runtime.addNetwork('unknown', undefined, 'unet');
  runtime.addContainer(undefined, 'probe', true, 'nosession');
  runtime.addContainer('labelled', 'probe', true, 'x1', 'bbbbbbbbbbbb');
  const all = { containers: [...runtime.containers.values()], networks: [...runtime.networks.values()] };
  const claim = claimLegacy(all, (s) => s === 'known' || s === 'labelled');
  assert.equal([...claim.adopted], ['known']);
  assert.equal(claim.unclaimed, { containers: ['edgeecho-unknown-probe', 'edgeecho-undefined-probe'], networks: ['edgeecho-unknown-net'] });
});

test.run();

/**
 * Two daemons' worth of sessions on one runtime, each seeing it through its own instance scope (as compose.ts
 * wires it): a sweep with no orphan grace, reconcile, the reaper and the resource tracker of one instance never
 * touch, finish or count as its own the objects of the other, nor unlabelled objects its records do not claim.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../src/log.js';
import { ResourceTracker } from '../../src/resources/tracker.js';
import { InstanceScope } from '../../src/runtime/instance-scope.js';
import { scopeToInstance } from '../../src/sessions/instance.js';
import { Reaper } from '../../src/sessions/reaper.js';
import { reconcile } from '../../src/sessions/reconcile.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { Sweep } from '../../src/sessions/sweep.js';
import { FakeRuntime, readySession, until } from '../support/fake-runtime.js';
import { testLifecycle } from '../support/lifecycle.js';

const SETTINGS = { sessionTtlS: 3600, orphanGraceS: 0, retentionDays: 14, keepFailed: false };

/** One daemon: its records, its scope of the shared runtime, its lifecycle. */
async function instance(runtime: FakeRuntime, id: string) {
  const store = openSessionStore(':memory:');
  const driver = await scopeToInstance({ driver: runtime, store, instance: id, log: silentLogger });
  const lifecycle = testLifecycle({ driver, store, config: { stopTimeoutS: 0 } });
  const sweep = new Sweep({ driver, store, finisher: lifecycle, settings: SETTINGS, cron: '* * * * * *', log: silentLogger });
  return { store, driver, lifecycle, sweep, [Symbol.dispose]: () => store.close() };
}

const create = (lifecycle: ReturnType<typeof testLifecycle>) => lifecycle.create({ mode: 'plain', count: 10 }, { signal: new AbortController().signal, status: () => undefined });

test('a sweep without orphan grace removes its own unclaimed objects and nothing of another instance or of no instance', async () => {
  const runtime = new FakeRuntime();
  using a = await instance(runtime, 'aaaaaaaaaaaa');
  using b = await instance(runtime, 'bbbbbbbbbbbb');
  const mine = await create(a.lifecycle);
  const theirs = await create(b.lifecycle);
  runtime.addContainer('orphana', 'probe', true, 'orphan-a', 'aaaaaaaaaaaa');
  runtime.addNetwork('orphana', undefined, 'orphan-a-net', 'aaaaaaaaaaaa');
  runtime.addContainer('oldrun', 'stream', true, 'old-stream');
  runtime.addNetwork('oldrun', undefined, 'old-net');
  const before = new Set(runtime.containers.keys());

  const report = await a.sweep.tick();
  assert.equal(report.removed, { containers: ['orphan-a'], networks: ['orphan-a-net'] });
  const reportB = await b.sweep.tick();
  assert.equal(reportB.removed, { containers: [], networks: [] });
  assert.equal([...runtime.containers.keys()].sort(), [...before].filter((id) => id !== 'orphan-a').sort());
  assert.is(a.store.get(mine.id)!.state, 'ready');
  assert.is(b.store.get(theirs.id)!.state, 'ready');
  assert.ok(runtime.networks.has('old-net'));
});

test('reconcile at start judges only its own records and objects: another instance\'s running session is neither adopted nor removed', async () => {
  const runtime = new FakeRuntime();
  using a = await instance(runtime, 'aaaaaaaaaaaa');
  const running = await create(a.lifecycle);
  // b restarts with no record of a's session, and an interrupted create of its own.
  using b = await instance(runtime, 'bbbbbbbbbbbb');
  b.store.create({ id: 'cutoff', mode: 'plain', count: 1, payloadBytes: 1, rate: null });
  runtime.addContainer('cutoff', 'probe', true, 'cutoff-probe', 'bbbbbbbbbbbb');
  const report = await reconcile({ driver: b.driver, store: b.store, lifecycle: b.lifecycle, settings: SETTINGS, log: silentLogger });
  assert.equal(report.rolledBack, ['cutoff']);
  assert.equal(report.adopted, []);
  assert.equal(report.removed, { containers: [], networks: [] });
  assert.not.ok(runtime.containers.has('cutoff-probe'));
  assert.equal([...runtime.containers.values()].filter((c) => c.session === running.id).map((c) => c.running), [true, true]);
});

test('the reaper finishes its own session when its containers exit, never another instance\'s', async () => {
  const runtime = new FakeRuntime();
  using a = await instance(runtime, 'aaaaaaaaaaaa');
  using b = await instance(runtime, 'bbbbbbbbbbbb');
  const mine = await create(a.lifecycle);
  const theirs = await create(b.lifecycle);
  const reaperB = new Reaper({ driver: b.driver, store: b.store, finisher: b.lifecycle, log: silentLogger });
  const reaperA = new Reaper({ driver: a.driver, store: a.store, finisher: a.lifecycle, log: silentLogger });
  reaperA.start();
  reaperB.start();
  try {
    await runtime.subscribed(2);
    for (const c of [...runtime.containers.values()].filter((x) => x.session === mine.id)) runtime.exit(c.id);
    await until(() => a.store.get(mine.id)!.state === 'completed');
    await a.lifecycle.idle();
    assert.ok(reaperA.stats.events >= 2);
    assert.is(reaperB.stats.events, 0, 'b never hears of a\'s containers');
    assert.is(b.store.get(theirs.id)!.state, 'ready');
    assert.equal([...runtime.containers.values()].filter((c) => c.session === theirs.id).map((c) => c.running), [true, true]);
  } finally {
    await reaperA.stop();
    await reaperB.stop();
  }
});

test('the tracker lists only its own sessions\' usage and counts the others as foreign or unlabelled', async () => {
  const runtime = new FakeRuntime();
  using a = await instance(runtime, 'aaaaaaaaaaaa');
  using b = await instance(runtime, 'bbbbbbbbbbbb');
  const mine = await create(a.lifecycle);
  await create(b.lifecycle);
  await create(b.lifecycle);
  runtime.addContainer('oldrun', 'stream', true, 'old-stream');
  const readers = { procStat: async () => 'cpu  1 0 1 8 0 0 0 0\n', meminfo: async () => 'MemTotal: 8 kB\nMemAvailable: 4 kB\n', loadavg: (): [number, number, number] => [0, 0, 0], statfs: async () => ({ bsize: 1, blocks: 1, bavail: 1 }), cpuCount: () => 1 };
  const tracker = new ResourceTracker({ driver: a.driver, dataDir: '/d', cron: '* * * * * *', log: silentLogger, readers });
  const snap = await tracker.sample();
  assert.equal(snap.sessions.map((s) => s.session), [mine.id]);
  assert.equal(
    { containers: snap.engine.containers, networks: snap.engine.networks, foreign: snap.engine.foreign, unlabelled: snap.engine.unlabelled },
    { containers: 2, networks: 1, foreign: { containers: 4, running: 4, networks: 2 }, unlabelled: { containers: 1, running: 1, networks: 0 } },
  );
});

test('at start, unlabelled objects whose session the records know are adopted as its own and reaped; others stay unlabelled', async () => {
  const runtime = new FakeRuntime();
  const store = openSessionStore(':memory:');
  try {
    readySession(store, 'oldmine', ['probe', 'stream']);
    runtime.addContainer('oldmine', 'probe', false);
    runtime.addContainer('oldmine', 'stream', true);
    runtime.addNetwork('oldmine');
    runtime.addContainer('oldtheirs', 'stream', true);
    const driver = await scopeToInstance({ driver: runtime, store, instance: 'aaaaaaaaaaaa', log: silentLogger });
    assert.instance(driver, InstanceScope);
    const lifecycle = testLifecycle({ driver, store, config: { stopTimeoutS: 0 } });
    const report = await reconcile({ driver, store, lifecycle, settings: SETTINGS, log: silentLogger });
    assert.equal(report.adopted, ['oldmine']);
    const reaper = new Reaper({ driver, store, finisher: lifecycle, log: silentLogger });
    reaper.start();
    try {
      await runtime.subscribed(1);
      runtime.exit('oldmine-stream');
      await until(() => store.get('oldmine')!.state === 'completed');
      await lifecycle.idle();
    } finally {
      await reaper.stop();
    }
    assert.equal([...runtime.containers.keys()], ['oldtheirs-stream']);
    assert.is((await driver.listManaged()).outside!.unlabelled.containers, 1);
  } finally {
    store.close();
  }
});

test.run();

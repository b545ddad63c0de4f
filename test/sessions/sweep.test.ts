import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DAY_MS, ObjectAges, Sweep, type SweepSettings } from '../../src/sessions/sweep.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { Admission } from '../../src/resources/admission.js';
import type { Scheduler } from '../../src/scheduler.js';
import { silentLogger } from '../../src/log.js';
import { FakeRuntime, fakeFinisher, readySession } from '../support/fake-runtime.js';

const T0 = 1_700_000_000_000;

function setup(settings: Partial<SweepSettings> = {}) {
  const runtime = new FakeRuntime();
  const store = openSessionStore(':memory:');
  const finisher = fakeFinisher(runtime, store);
  const clock = { now: T0 };
  const sweep = new Sweep({
    driver: runtime,
    store,
    finisher,
    settings: { sessionTtlS: 3600, orphanGraceS: 60, retentionDays: 14, keepFailed: false, ...settings },
    cron: '*/30 * * * * *',
    log: silentLogger,
    now: () => clock.now,
  });
  return { runtime, store, finish: finisher, sweep, clock, [Symbol.dispose]: () => store.close() };
}

test('a ready session whose containers all exited without an event is finished', async () => {
  using t = setup();
  readySession(t.store, 'missed', ['probe', 'stream'], T0);
  t.runtime.addContainer('missed', 'probe', false);
  t.runtime.addContainer('missed', 'stream', false);
  readySession(t.store, 'running', ['probe', 'stream'], T0);
  t.runtime.addContainer('running', 'probe', false);
  t.runtime.addContainer('running', 'stream', true);
  readySession(t.store, 'vanished', ['stream'], T0); // containers gone entirely count as exited
  const report = await t.sweep.tick();
  assert.equal(report.finished.sort(), ['missed', 'vanished']);
  assert.is(t.store.get('missed')!.state, 'completed');
  assert.is(t.store.get('running')!.state, 'ready');
  assert.is(t.store.get('vanished')!.state, 'failed');
  assert.match(t.store.get('vanished')!.error!.message, /containers vanished/);
});

test('a session that becomes ready while the runtime is being listed is not finished from the stale listing', async () => {
  using t = setup();
  t.store.create({ id: 'fresh', mode: 'plain', count: 10, payloadBytes: 64, rate: null }, T0);
  const list = t.runtime.listManaged.bind(t.runtime);
  t.runtime.listManaged = async () => {
    const snapshot = await list();
    // The create finishes while the engine answers: its containers start and the record turns ready.
    for (const role of ['probe', 'stream'] as const) {
      t.runtime.addContainer('fresh', role);
      t.store.putContainer('fresh', { id: `fresh-${role}`, name: `edgeecho-fresh-${role}`, role, startedAt: null, finishedAt: null, exitCode: null, stats: null }, T0);
    }
    t.store.transition('fresh', 'ready', undefined, undefined, T0);
    return snapshot;
  };
  const report = await t.sweep.tick();
  assert.equal(report.finished, []);
  assert.is(t.finish.calls.length, 0);
  assert.is(t.store.get('fresh')!.state, 'ready');
  assert.ok(t.runtime.containers.has('fresh-stream'));
});

test('a session past the TTL is failed with the reason, in any live state', async () => {
  using t = setup({ sessionTtlS: 60 });
  readySession(t.store, 'old', ['stream'], T0);
  t.runtime.addContainer('old', 'stream');
  t.store.create({ id: 'stuck', mode: 'plain', count: 1, payloadBytes: 1, rate: null }, T0);
  readySession(t.store, 'young', ['stream'], T0 + 30_000);
  t.runtime.addContainer('young', 'stream');
  t.clock.now = T0 + 60_001;
  const report = await t.sweep.tick();
  assert.equal(report.expired.sort(), ['old', 'stuck']);
  const old = t.store.get('old')!;
  assert.is(old.state, 'failed');
  assert.match(old.transitions.at(-1)!.reason!, /after its TTL of 60 s \(EDGEECHO_SESSION_TTL_S\)/);
  assert.is(old.error!.code, 'TIMEOUT');
  assert.is(t.store.get('stuck')!.state, 'failed');
  assert.is(t.store.get('young')!.state, 'ready');
  assert.ok(!t.runtime.containers.has('old-stream'));
});

test('unclaimed labelled objects are removed only after the grace; claimed ones stay', async () => {
  using t = setup({ orphanGraceS: 60 });
  readySession(t.store, 'live', ['stream'], T0);
  t.runtime.addContainer('live', 'stream');
  t.runtime.addNetwork('live');
  t.runtime.addContainer('orphan', 'stream');
  t.runtime.addNetwork('orphan', new Date(T0).toISOString());
  t.runtime.addContainer(undefined, 'probe', false, 'unlabelled');
  const first = await t.sweep.tick();
  assert.equal(first.removed, { containers: [], networks: [] });
  t.clock.now = T0 + 59_000;
  assert.equal((await t.sweep.tick()).removed, { containers: [], networks: [] });
  t.clock.now = T0 + 60_000;
  const third = await t.sweep.tick();
  assert.equal(third.removed.containers.sort(), ['orphan-stream', 'unlabelled']);
  assert.equal(third.removed.networks, ['orphan-net']);
  assert.ok(t.runtime.containers.has('live-stream') && t.runtime.networks.has('live-net'));
});

test('objects of a finished session go at once, without the grace (e.g. a network whose removal failed mid-restart)', async () => {
  using t = setup({ orphanGraceS: 60 });
  readySession(t.store, 'done', ['stream'], T0);
  t.store.transition('done', 'failed', 'stream exited with code 143', {}, T0);
  t.runtime.addNetwork('done', new Date(T0).toISOString());
  t.runtime.addContainer('done', 'stream', false);
  t.runtime.addNetwork('unknown', new Date(T0).toISOString());
  const report = await t.sweep.tick();
  assert.equal(report.removed, { containers: ['done-stream'], networks: ['done-net'] });
  assert.ok(t.runtime.networks.has('unknown-net'), 'an object no record knows waits out the grace');
});

test('failed sessions kept for debugging keep their containers until the TTL has passed since they ended', async () => {
  using t = setup({ keepFailed: true, sessionTtlS: 100, orphanGraceS: 0 });
  readySession(t.store, 'kept', ['stream'], T0);
  t.store.transition('kept', 'failed', 'exit 1', undefined, T0 + 10_000);
  t.runtime.addContainer('kept', 'stream', false);
  t.clock.now = T0 + 109_000;
  assert.equal((await t.sweep.tick()).removed.containers, []);
  t.clock.now = T0 + 110_000;
  assert.equal((await t.sweep.tick()).removed.containers, ['kept-stream']);
});

test('records ended before the retention are pruned; the runtime being down does not stop pruning', async () => {
  using t = setup({ retentionDays: 2 });
  readySession(t.store, 'old', ['stream'], T0);
  t.store.transition('old', 'completed', undefined, undefined, T0);
  readySession(t.store, 'recent', ['stream'], T0);
  t.store.transition('recent', 'completed', undefined, undefined, T0 + DAY_MS);
  t.runtime.listFails = new Error('connect ECONNREFUSED');
  t.clock.now = T0 + 2 * DAY_MS + 1;
  const report = await t.sweep.tick();
  assert.is(report.pruned, 1);
  assert.match(report.runtimeError!, /ECONNREFUSED/);
  assert.equal(t.store.list().map((r) => r.id), ['recent']);
});

test('the sweep releases admission reservations of sessions no longer live', async () => {
  const runtime = new FakeRuntime();
  const store = openSessionStore(':memory:');
  try {
    const admission = new Admission({ capacityMemory: 1e12, capacityCpus: 100, minFreeMemory: 0, maxSessions: 10, limits: { probe: { memoryBytes: 1, nanoCpus: 1, pids: 8 }, stream: { memoryBytes: 1, nanoCpus: 1, pids: 8 }, segmentation: { memoryBytes: 1, nanoCpus: 1, pids: 8 } }, availableMemory: () => null });
    admission.admit('gone', ['stream']);
    readySession(store, 'live', ['stream'], T0);
    runtime.addContainer('live', 'stream');
    admission.admit('live', ['stream']);
    const sweep = new Sweep({ driver: runtime, store, finisher: fakeFinisher(runtime, store), settings: { sessionTtlS: 3600, orphanGraceS: 60, retentionDays: 14, keepFailed: false }, cron: '* * * * * *', log: silentLogger, admission, now: () => T0 });
    await sweep.tick();
    assert.ok(admission.has('live') && !admission.has('gone'));
  } finally {
    store.close();
  }
});

test('start schedules ticks on the cron; overlapping ticks are joined; stop cancels', async () => {
  const ticks: Array<() => void> = [];
  let cancelled = false;
  const scheduler: Scheduler = (cron, _n, fn) => {
    assert.is(cron, '*/30 * * * * *');
    ticks.push(fn);
    return { cancel: () => void (cancelled = true) };
  };
  const runtime = new FakeRuntime();
  const store = openSessionStore(':memory:');
  try {
    let lists = 0;
    const driver = { ...runtime, removeContainer: runtime.removeContainer.bind(runtime), removeNetwork: runtime.removeNetwork.bind(runtime), listManaged: async () => (lists++, runtime.listManaged()) };
    const sweep = new Sweep({ driver, store, finisher: { finish: async () => undefined, finishing: () => false }, settings: { sessionTtlS: 3600, orphanGraceS: 60, retentionDays: 14, keepFailed: false }, cron: '*/30 * * * * *', log: silentLogger, scheduler });
    sweep.start();
    sweep.start();
    assert.is(ticks.length, 1);
    const [a, b] = await Promise.all([sweep.tick(), sweep.tick()]);
    assert.is(a, b);
    assert.is(lists, 1);
    await sweep.stop();
    assert.ok(cancelled);
  } finally {
    store.close();
  }
});

test('ObjectAges counts from creation when known, else from first sight, and forgets what is gone', () => {
  const ages = new ObjectAges();
  assert.is(ages.ageMs('c', 1000), 0);
  assert.is(ages.ageMs('c', 5000), 4000);
  assert.is(ages.ageMs('n', 5000, new Date(2000).toISOString()), 3000);
  ages.retain(['n']);
  assert.is(ages.ageMs('c', 9000), 0);
});

test.run();

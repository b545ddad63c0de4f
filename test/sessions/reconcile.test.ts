import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config.js';
import { SessionBus } from '../../src/sessions/events.js';
import { SessionLifecycle } from '../../src/sessions/lifecycle.js';
import { RESTARTED_DURING_CREATE, type FinishRequest } from '../../src/sessions/outcome.js';
import { reconcile } from '../../src/sessions/reconcile.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { Admission } from '../../src/resources/admission.js';
import { silentLogger } from '../../src/log.js';
import { FakeRuntime, readySession } from '../support/fake-runtime.js';

const limits = { memoryBytes: 100, nanoCpus: 1e9, pids: 8 };
const { config } = loadConfig({ env: { EDGEECHO_STOP_TIMEOUT_S: '0' } });

function setup() {
  const runtime = new FakeRuntime();
  const store = openSessionStore(':memory:');
  const admission = new Admission({ capacityMemory: 150, capacityCpus: 100, minFreeMemory: 0, maxSessions: 100, limits: { probe: limits, stream: limits, segmentation: limits }, availableMemory: () => null });
  const lifecycle = new SessionLifecycle({ driver: runtime, store, bus: new SessionBus(), admission, config, log: silentLogger });
  // Records what reconcile handed over; the real lifecycle acts on it.
  const calls: Array<{ id: string; request: FinishRequest }> = [];
  const finish = lifecycle.finish.bind(lifecycle);
  lifecycle.finish = (id, request) => (calls.push({ id, request }), finish(id, request));
  const run = () => reconcile({ driver: runtime, store, lifecycle, settings: { orphanGraceS: 0, keepFailed: false, sessionTtlS: 3600 }, log: silentLogger });
  return { runtime, store, finish: { calls }, lifecycle, admission, run, [Symbol.dispose]: () => store.close() };
}

function creating(t: ReturnType<typeof setup>, id: string, mode: 'plain' | 'segmented' = 'plain'): void {
  t.store.create({ id, mode, count: 1, payloadBytes: 1, rate: null });
  t.store.update(id, { network: { id: `${id}-net`, name: `edgeecho-${id}-net`, subnet: '10.213.0.0/28' } });
}

test('running sessions are adopted and re-reserved; their records are untouched', async () => {
  using t = setup();
  readySession(t.store, 'run', ['probe', 'stream']);
  t.runtime.addContainer('run', 'probe', false);
  t.runtime.addContainer('run', 'stream');
  t.runtime.addNetwork('run');
  const report = await t.run();
  assert.equal(report.adopted, ['run']);
  assert.is(t.store.get('run')!.state, 'ready');
  assert.equal(t.admission.state().reservedMemoryBytes, 200);
  assert.is(t.runtime.containers.size, 2);
  assert.equal(report.removed, { containers: [], networks: [] });
});

test('records whose containers vanished are failed and their leftover network removed', async () => {
  using t = setup();
  readySession(t.store, 'gone', ['stream']);
  t.runtime.addNetwork('gone');
  const report = await t.run();
  assert.equal(report.vanished, ['gone']);
  const rec = t.store.get('gone')!;
  assert.is(rec.state, 'failed');
  assert.match(rec.error!.message, /containers vanished/);
  assert.is(t.runtime.networks.size, 0);
});

test('ready sessions whose containers all exited meanwhile are finished, stops in progress completed', async () => {
  using t = setup();
  readySession(t.store, 'done', ['stream']);
  t.runtime.addContainer('done', 'stream', false);
  readySession(t.store, 'halted', ['stream']);
  t.store.transition('halted', 'stopping', 'session.stop');
  t.runtime.addContainer('halted', 'stream');
  const report = await t.run();
  assert.equal(report.finished, ['done']);
  assert.equal(report.stopped, ['halted']);
  assert.is(t.store.get('done')!.state, 'completed');
  assert.is(t.store.get('halted')!.state, 'stopped');
  assert.equal(t.finish.calls.map((c) => c.request.cause).sort(), ['exited', 'stop']);
});

test('a stop interrupted after its containers were removed ends stopped, not failed as vanished', async () => {
  using t = setup();
  readySession(t.store, 'halfway', ['stream']);
  t.store.transition('halfway', 'stopping', 'session.stop');
  t.runtime.addNetwork('halfway');
  const report = await t.run();
  assert.equal(report.stopped, ['halfway']);
  assert.equal(report.vanished, []);
  assert.is(t.store.get('halfway')!.state, 'stopped');
  assert.is(t.runtime.networks.size, 0);
});

test('a create caught without its full set of containers is rolled back and failed', async () => {
  using t = setup();
  creating(t, 'half', 'segmented');
  t.runtime.addNetwork('half');
  t.runtime.addContainer('half', 'probe', false);
  t.runtime.addContainer('half', 'stream');
  const report = await t.run();
  assert.equal(report.rolledBack, ['half']);
  const rec = t.store.get('half')!;
  assert.is(rec.state, 'failed');
  assert.is(rec.transitions.at(-1)!.reason, RESTARTED_DURING_CREATE);
  assert.is(t.runtime.containers.size, 0);
  assert.is(t.runtime.networks.size, 0);
  assert.is(t.admission.has('half'), false);
});

test('a create caught with every server running is adopted as ready with its location', async () => {
  using t = setup();
  creating(t, 'full');
  t.runtime.addContainer('full', 'probe', false);
  const stream = t.runtime.addContainer('full', 'stream');
  stream.published = { host: '127.0.0.1', port: 41000 };
  const report = await t.run();
  assert.equal(report.adopted, ['full']);
  const rec = t.store.get('full')!;
  assert.is(rec.state, 'ready');
  assert.equal(rec.location, { host: '127.0.0.1', port: 41000 });
  assert.equal(rec.containers.map((c) => c.role).sort(), ['probe', 'stream']);
});

test('a create cut off between its probe\'s create and start is rolled back, though every server runs', async () => {
  using t = setup();
  creating(t, 'unstarted');
  const probe = t.runtime.addContainer('unstarted', 'probe', false);
  probe.status = 'created';
  probe.exitCode = null;
  t.runtime.addContainer('unstarted', 'stream');
  const report = await t.run();
  assert.equal(report.adopted, []);
  assert.equal(report.rolledBack, ['unstarted']);
  assert.is(t.runtime.containers.size, 0);
});

test('objects no record claims are removed (past the grace), those of finished sessions at once', async () => {
  using t = setup();
  readySession(t.store, 'mine-done', ['stream']);
  t.store.transition('mine-done', 'completed');
  t.runtime.addContainer('mine-done', 'stream', false);
  t.runtime.addContainer('mine-x', 'stream');
  t.runtime.addNetwork('mine-x');
  const report = await t.run();
  assert.equal(report.removed.containers.sort(), ['mine-done-stream', 'mine-x-stream']);
  assert.equal(report.removed.networks, ['mine-x-net']);
  assert.is(t.runtime.containers.size, 0);
});

test('shutdown leaves sessions running unless asked to stop them', async () => {
  using t = setup();
  readySession(t.store, 'a', ['stream']);
  t.runtime.addContainer('a', 'stream');
  assert.equal(await t.lifecycle.shutdown(false), []);
  assert.is(t.store.get('a')!.state, 'ready');
  assert.equal(await t.lifecycle.shutdown(true), ['a']);
  assert.is(t.store.get('a')!.state, 'stopped');
});


test('a claim cut off by a restart (a container still parked) is rolled back, not adopted because all its containers run', async () => {
  for (const stillParked of [true, false]) {
    using t = setup();
    creating(t, 'claim');
    t.runtime.addContainer('claim', 'probe');
    t.runtime.addContainer('claim', 'stream');
    t.runtime.addNetwork('claim');
    const parked = { has: () => false, adopt: async () => ({ adopted: [], discarded: [] }), anyStillParked: async () => stillParked };
    const report = await reconcile({ driver: t.runtime, store: t.store, lifecycle: t.lifecycle, settings: { orphanGraceS: 0, keepFailed: false, sessionTtlS: 3600 }, log: silentLogger, parked });
    if (stillParked) {
      assert.equal(report.rolledBack, ['claim']);
      assert.is(t.store.get('claim')!.state, 'failed');
      assert.is(t.runtime.containers.size, 0);
    } else {
      assert.equal(report.adopted, ['claim']);
      assert.is(t.store.get('claim')!.state, 'ready');
    }
  }
});

test.run();

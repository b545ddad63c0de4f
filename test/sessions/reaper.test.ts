import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reaper } from '../../src/sessions/reaper.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { SessionBus } from '../../src/sessions/events.js';
import { silentLogger } from '../../src/log.js';
import type { RuntimeDriver, RuntimeEvent } from '../../src/runtime/driver.js';
import { FakeRuntime, fakeFinisher, readySession, tick, until } from '../support/fake-runtime.js';

function setup(options: { sleeps?: number[]; driver?: Pick<RuntimeDriver, 'events' | 'inspectContainer'>; gate?: Promise<void> } = {}) {
  const runtime = new FakeRuntime();
  const store = openSessionStore(':memory:');
  const finisher = fakeFinisher(runtime, store, options.gate);
  const sleeps = options.sleeps ?? [];
  const reaper = new Reaper({
    driver: options.driver ?? runtime,
    store,
    finisher,
    log: silentLogger,
    backoff: { initialMs: 100, maxMs: 400 },
    sleep: async (ms) => void sleeps.push(ms),
    nowS: () => 1_000,
    nowMs: () => 0,
  });
  return { runtime, store, finish: finisher, finisher, reaper, sleeps, [Symbol.asyncDispose]: async () => (await reaper.stop(), store.close()) };
}

test('a ready session is finished when its last container dies, not before', async () => {
  await using t = setup();
  readySession(t.store, 's1', ['probe', 'stream', 'segmentation']);
  t.runtime.addContainer('s1', 'probe', false);
  t.runtime.addContainer('s1', 'stream');
  t.runtime.addContainer('s1', 'segmentation');
  t.reaper.start();
  await t.runtime.subscribed(1);
  assert.equal(t.runtime.subscriptions[0], { since: 999 });
  t.runtime.exit('s1-stream');
  await until(() => t.reaper.stats.events === 1);
  for (let i = 0; i < 5; i++) await tick();
  assert.is(t.finish.calls.length, 0);
  assert.is(t.store.get('s1')!.state, 'ready');
  t.runtime.exit('s1-segmentation', 3);
  await until(() => t.store.get('s1')!.state === 'completed');
  assert.equal(t.finish.calls, [{ id: 's1', request: { cause: 'exited' } }]);
  assert.is(t.runtime.containers.size, 0);
});

test('exits during create and of unknown sessions are ignored', async () => {
  await using t = setup();
  t.store.create({ id: 'creating', mode: 'plain', count: 1, payloadBytes: 1, rate: null });
  t.store.putContainer('creating', { id: 'creating-probe', name: 'p', role: 'probe', startedAt: null, finishedAt: null, exitCode: null, stats: null });
  t.runtime.addContainer('creating', 'probe');
  t.runtime.addContainer('ghost', 'stream');
  t.reaper.start();
  await t.runtime.subscribed(1);
  t.runtime.exit('creating-probe');
  t.runtime.exit('ghost-stream');
  await until(() => t.reaper.stats.events === 2);
  for (let i = 0; i < 10; i++) await tick();
  assert.is(t.finish.calls.length, 0);
  assert.is(t.store.get('creating')!.state, 'creating');
});

test('a session whose containers all exited while it was still creating is finished once it turns ready', async () => {
  const bus = new SessionBus();
  const runtime = new FakeRuntime();
  const store = openSessionStore(':memory:');
  const finish = fakeFinisher(runtime, store);
  const reaper = new Reaper({ driver: runtime, store, finisher: finish, log: silentLogger, bus, sleep: async () => undefined, nowS: () => 1_000, nowMs: () => 0 });
  try {
    store.create({ id: 'quick', mode: 'plain', count: 1, payloadBytes: 1, rate: null });
    for (const role of ['probe', 'stream'] as const) {
      store.putContainer('quick', { id: `quick-${role}`, name: `edgeecho-quick-${role}`, role, startedAt: null, finishedAt: null, exitCode: null, stats: null });
      runtime.addContainer('quick', role);
    }
    reaper.start();
    await runtime.subscribed(1);
    // A short session can run to its end between the last ready line and the create recording it ready.
    runtime.exit('quick-probe');
    runtime.exit('quick-stream');
    await until(() => reaper.stats.events === 2);
    for (let i = 0; i < 5; i++) await tick();
    assert.is(finish.calls.length, 0);
    const record = store.transition('quick', 'ready');
    bus.publish({ id: 'quick', state: 'ready', record });
    await until(() => store.get('quick')!.state === 'completed');
    assert.equal(finish.calls, [{ id: 'quick', request: { cause: 'exited' } }]);
    await until(() => reaper.trackedSessions === 0);
  } finally {
    await reaper.stop();
    store.close();
  }
});

test('a burst of exit events finishes the session once', async () => {
  await using t = setup();
  readySession(t.store, 's1', ['probe', 'stream']);
  t.runtime.addContainer('s1', 'probe');
  t.runtime.addContainer('s1', 'stream');
  t.reaper.start();
  await t.runtime.subscribed(1);
  t.runtime.exit('s1-probe');
  t.runtime.exit('s1-stream');
  t.runtime.emit({ type: 'container', action: 'destroy', id: 's1-probe', session: 's1', timeNano: 2e12 });
  t.runtime.emit({ type: 'container', action: 'oom', id: 's1-stream', session: 's1', timeNano: 2e12 });
  await until(() => t.store.get('s1')!.state === 'completed');
  await t.finisher.idle();
  for (let i = 0; i < 5; i++) await tick();
  assert.is(t.finish.calls.length, 1);
});

test('nothing is kept per session finished by someone else (stop, sweep) while its destroy events arrive', async () => {
  let open!: () => void;
  await using t = setup({ gate: new Promise<void>((r) => (open = r)) });
  readySession(t.store, 's1', ['probe', 'stream']);
  t.runtime.addContainer('s1', 'probe');
  t.runtime.addContainer('s1', 'stream');
  t.reaper.start();
  await t.runtime.subscribed(1);
  const stopped = t.finisher.finish('s1', { cause: 'stop', reason: 'session.stop' });
  // the stop removes the containers: their destroy events arrive while it is still running
  t.runtime.emit({ type: 'container', action: 'destroy', id: 's1-probe', session: 's1', timeNano: 3e12 });
  t.runtime.emit({ type: 'container', action: 'destroy', id: 's1-stream', session: 's1', timeNano: 3e12 });
  await until(() => t.reaper.stats.events === 2);
  for (let i = 0; i < 5; i++) await tick();
  open();
  await stopped;
  for (let i = 0; i < 5; i++) await tick();
  assert.is(t.store.get('s1')!.state, 'stopped');
  assert.is(t.reaper.trackedSessions, 0, 'a daemon that runs for months must not grow with every session');
});

test('a broken stream reconnects after backoff from the last event seen and catches up exits it missed', async () => {
  await using t = setup();
  readySession(t.store, 'early', ['stream']);
  t.runtime.addContainer('early', 'stream');
  readySession(t.store, 'gap', ['stream']);
  t.runtime.addContainer('gap', 'stream');
  t.reaper.start();
  await t.runtime.subscribed(1);
  t.runtime.emit({ type: 'container', action: 'start', id: 'x', timeNano: 1_234_500_000_000 });
  await until(() => t.reaper.stats.events === 1);
  t.runtime.breakStreams();
  t.runtime.exit('gap-stream', 0, true); // exits while nobody listens: no event will ever say so
  await t.runtime.subscribed(2);
  assert.equal(t.runtime.subscriptions[1], { since: 1_233 });
  assert.equal(t.sleeps, [100]);
  await until(() => t.store.get('gap')!.state === 'completed');
  assert.is(t.store.get('early')!.state, 'ready');
  t.runtime.exit('early-stream');
  await until(() => t.store.get('early')!.state === 'completed');
  assert.is(t.reaper.stats.streamErrors, 1);
});

test('backoff doubles while the runtime stays down, caps at the maximum and resets once it answers', async () => {
  const runtime = new FakeRuntime();
  let failures = 4;
  const driver = {
    inspectContainer: runtime.inspectContainer.bind(runtime),
    events(options: { since?: number; signal: AbortSignal }): AsyncIterable<RuntimeEvent> {
      if (failures > 0) {
        failures--;
        return {
          [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('connect ECONNREFUSED /var/run/docker.sock')) }),
        };
      }
      return runtime.events(options);
    },
  };
  await using t = setup({ driver });
  t.reaper.start();
  await t.runtime.subscribed(0);
  await until(() => runtime.openStreams === 1);
  assert.equal(t.sleeps, [100, 200, 400, 400]);
  runtime.emit({ type: 'container', action: 'start', id: 'x', timeNano: 5e12 });
  await until(() => t.reaper.stats.events === 1);
  runtime.breakStreams();
  await until(() => t.sleeps.length === 5);
  assert.is(t.sleeps[4], 100);
});

test('stop ends the event subscription and leaves sessions alone', async () => {
  await using t = setup();
  readySession(t.store, 's1', ['stream']);
  t.runtime.addContainer('s1', 'stream');
  t.reaper.start();
  await t.runtime.subscribed(1);
  await t.reaper.stop();
  assert.is(t.runtime.openStreams, 0);
  t.runtime.exit('s1-stream');
  for (let i = 0; i < 5; i++) await tick();
  assert.is(t.store.get('s1')!.state, 'ready');
});

test.run();

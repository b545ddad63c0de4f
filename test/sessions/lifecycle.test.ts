/** The session lifecycle decides and acts: one outcome per request, one finish per session, creates cancelled by whoever ends them. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { SessionBus } from '../../src/sessions/events.js';
import { Admission, admissionOptions } from '../../src/resources/admission.js';
import { loadConfig } from '../../src/config.js';
import { RESTARTED_DURING_CREATE, VANISHED } from '../../src/sessions/outcome.js';
import { FakeRuntime, readySession, until } from '../support/fake-runtime.js';
import { testLifecycle } from '../support/lifecycle.js';
import type { EdgeechoError } from '../../protocol/errors.js';
import type { SessionPool } from '../../src/sessions/pool.js';

const { config } = loadConfig({ env: { EDGEECHO_CAPACITY_MEMORY: '1g', EDGEECHO_CAPACITY_CPUS: '64', EDGEECHO_MIN_FREE_MEMORY: '0', EDGEECHO_STOP_TIMEOUT_S: '0' } });

function setup() {
  const runtime = new FakeRuntime();
  const store = openSessionStore(':memory:');
  const bus = new SessionBus();
  const admission = new Admission(admissionOptions(config, () => null));
  const lifecycle = testLifecycle({ driver: runtime, store, bus, admission, config });
  return { runtime, store, bus, admission, lifecycle, [Symbol.dispose]: () => store.close() };
}

const status = { status: () => undefined };

test('each finish request becomes one outcome: completed or failed by the containers, stopped, expired, vanished, interrupted', async () => {
  using t = setup();
  for (const id of ['ok', 'bad', 'stop', 'ttl', 'gone', 'cut']) readySession(t.store, id, ['stream']);
  t.runtime.addContainer('ok', 'stream', false);
  t.runtime.addContainer('bad', 'stream', false).exitCode = 3;
  t.runtime.addContainer('stop', 'stream');
  t.runtime.addContainer('ttl', 'stream');
  await t.lifecycle.finish('ok', { cause: 'exited' });
  await t.lifecycle.finish('bad', { cause: 'exited' });
  await t.lifecycle.finish('stop', { cause: 'stop', reason: 'session.stop' });
  await t.lifecycle.finish('ttl', { cause: 'expired', ttlS: 60, state: 'ready' });
  await t.lifecycle.finish('gone', { cause: 'vanished', expected: ['edgeecho-gone-stream'] });
  await t.lifecycle.finish('cut', { cause: 'interrupted' });
  const got = Object.fromEntries(['ok', 'bad', 'stop', 'ttl', 'gone', 'cut'].map((id) => [id, t.store.get(id)!]));
  assert.is(got.ok!.state, 'completed');
  assert.is(got.bad!.state, 'failed');
  assert.match(got.bad!.error!.message, 'exited with code 3');
  assert.is(got.stop!.state, 'stopped');
  assert.is(got.stop!.transitions.at(-1)!.reason, 'session.stop');
  assert.equal([got.ttl!.state, got.ttl!.error!.code], ['failed', 'TIMEOUT']);
  assert.match(got.ttl!.transitions.at(-1)!.reason!, 'after its TTL of 60 s (EDGEECHO_SESSION_TTL_S)');
  assert.equal([got.gone!.state, got.gone!.error!.code, got.gone!.transitions.at(-1)!.reason], ['failed', 'RUNTIME_UNAVAILABLE', VANISHED]);
  assert.equal([got.cut!.state, got.cut!.transitions.at(-1)!.reason], ['failed', RESTARTED_DURING_CREATE]);
  assert.is(t.runtime.containers.size, 0);
});

test('a session that ended by itself is collected once the claims under way end; a stop does not wait for them', async () => {
  using t = setup();
  readySession(t.store, 'done', ['stream']);
  t.runtime.addContainer('done', 'stream', false);
  readySession(t.store, 'stop', ['stream']);
  t.runtime.addContainer('stop', 'stream');
  let claimsEnd!: () => void;
  const claims = new Promise<void>((resolve) => (claimsEnd = resolve));
  t.lifecycle.usePool({ claimsEnded: () => claims } as unknown as SessionPool);
  const ended = t.lifecycle.finish('done', { cause: 'exited' });
  assert.is((await t.lifecycle.finish('stop', { cause: 'stop', reason: 'session.stop' })).state, 'stopped');
  await new Promise((r) => setImmediate(r));
  assert.is(t.store.get('done')!.state, 'ready', 'its teardown waits for the claims');
  assert.ok(t.lifecycle.finishing('done'), 'and its finish guard holds meanwhile');
  claimsEnd();
  assert.is((await ended).state, 'completed');
  assert.is(t.runtime.containers.size, 0);
});

test('concurrent finishes of one session run once: the first request decides', async () => {
  using t = setup();
  readySession(t.store, 's', ['stream']);
  t.runtime.addContainer('s', 'stream');
  let removes = 0;
  const remove = t.runtime.removeContainer.bind(t.runtime);
  t.runtime.removeContainer = async (id) => (removes++, remove(id));
  const first = t.lifecycle.finish('s', { cause: 'stop', reason: 'session.stop' });
  assert.ok(t.lifecycle.finishing('s'));
  const second = t.lifecycle.finish('s', { cause: 'expired', ttlS: 1, state: 'ready' });
  const [a, b] = await Promise.all([first, second]);
  assert.is(a, b);
  assert.is(a.state, 'stopped');
  assert.is(removes, 1);
  assert.not.ok(t.lifecycle.finishing('s'));
});

test('a create ended from elsewhere (TTL) is cancelled and rolled back; its reservation is released and its client gets that outcome', async () => {
  using t = setup();
  let open!: () => void;
  t.runtime.readyGate = new Promise((r) => (open = r));
  const frames: Array<Record<string, unknown>> = [];
  const creating = t.lifecycle.create({ mode: 'segmented', count: 5 }, { signal: new AbortController().signal, status: (f) => frames.push(f) }).catch((e: EdgeechoError) => e);
  await until(() => t.runtime.calls.includes('waitReady probe'));
  const id = String(frames[0]!.session);
  assert.ok(t.admission.has(id));
  const final = await t.lifecycle.finish(id, { cause: 'expired', ttlS: 5, state: 'creating' });
  open();
  assert.is(final.state, 'failed');
  const err = (await creating) as EdgeechoError;
  assert.is(err.code, 'TIMEOUT');
  assert.is(err.details?.step, 'ready probe', 'the error names the step the cancel interrupted');
  assert.not.ok(t.admission.has(id));
  assert.equal([t.runtime.containers.size, t.runtime.networks.size], [0, 0]);
  assert.equal(frames.at(-1), { ...frames.at(-1), step: 'session', state: 'failed' });
});

test('adopt restores the reservation and turns a complete create ready; shutdown stops only when asked', async () => {
  using t = setup();
  t.store.create({ id: 'kept', mode: 'plain', count: 1, payloadBytes: 8, rate: null });
  const probe = t.runtime.addContainer('kept', 'probe', false);
  const stream = t.runtime.addContainer('kept', 'stream');
  stream.published = { host: '127.0.0.1', port: 40000 };
  t.lifecycle.adopt(t.store.get('kept')!, [probe, stream], 'adopted after restart');
  const rec = t.store.get('kept')!;
  assert.equal([rec.state, rec.location], ['ready', { host: '127.0.0.1', port: 40000 }]);
  assert.ok(t.admission.has('kept'));
  assert.equal(await t.lifecycle.shutdown(false), []);
  assert.is(t.store.get('kept')!.state, 'ready');
  assert.equal(await t.lifecycle.shutdown(true), ['kept']);
  assert.is(t.store.get('kept')!.state, 'stopped');
  assert.not.ok(t.admission.has('kept'));
});

test('stop of a finished session only cleans up; NOT_FOUND for an unknown one', async () => {
  using t = setup();
  const r = await t.lifecycle.create({ mode: 'plain', count: 3 }, { signal: new AbortController().signal, ...status });
  assert.is((await t.lifecycle.stop(r.id, status)).state, 'stopped');
  assert.is((await t.lifecycle.stop(r.id, status)).state, 'stopped');
  await t.lifecycle.stop('nosuchsess', status).then(
    () => assert.unreachable(),
    (e: EdgeechoError) => assert.is(e.code, 'NOT_FOUND'),
  );
});

test('a stop landing after the last step ended but before the create returned still ends the session stopped, with nothing left', async () => {
  using t = setup();
  let id = '';
  let stopping: Promise<{ state: string }> | undefined;
  const frames: Array<Record<string, unknown>> = [];
  const status = (f: Record<string, unknown>): void => {
    frames.push(f);
    if (f.step === 'session' && f.state === 'started') id = String(f.session);
    // The last step reports done: the engine has nothing pending, so it no longer turns an abort into a failure.
    if (f.step === 'location' && f.state === 'done') stopping = t.lifecycle.stop(id, { status: () => undefined });
  };
  const err = await t.lifecycle.create({ mode: 'plain', count: 3 }, { signal: new AbortController().signal, status }).then(
    (): EdgeechoError => assert.unreachable('the create must not succeed once stopped') as never,
    (e: EdgeechoError) => e,
  );
  assert.ok(stopping, 'the stop was issued');
  const final = await stopping!;
  assert.is(err.code, 'CANCELLED');
  assert.is(final.state, 'stopped');
  assert.is(t.store.get(id)!.state, 'stopped');
  assert.equal([t.runtime.containers.size, t.runtime.networks.size], [0, 0]);
  assert.not.ok(t.admission.has(id));
  assert.equal(frames.at(-1), { ...frames.at(-1), step: 'session', state: 'failed' });
});

test('a cancel names the step it interrupted even when that step ignores the signal (create <role>)', async () => {
  using t = setup();
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const create = t.runtime.createContainer.bind(t.runtime);
  t.runtime.createContainer = async (spec) => (await gate, create(spec));
  const frames: Array<Record<string, unknown>> = [];
  const creating = t.lifecycle.create({ mode: 'plain', count: 3 }, { signal: new AbortController().signal, status: (f) => frames.push(f) }).catch((e: EdgeechoError) => e);
  await until(() => frames.some((f) => f.step === 'create probe' && f.state === 'started'));
  const id = String(frames[0]!.session);
  const finishing = t.lifecycle.finish(id, { cause: 'expired', ttlS: 1, state: 'creating' });
  open();
  await finishing;
  const err = (await creating) as EdgeechoError;
  assert.is(err.code, 'TIMEOUT');
  assert.match(String(err.details?.step), /^create (probe|stream)$/);
  assert.equal([t.runtime.containers.size, t.runtime.networks.size], [0, 0]);
});

test('a create cut off by a crash is removed at once at reconcile: no graceful stop, nothing kept even with EDGEECHO_KEEP_FAILED', async () => {
  const runtime = new FakeRuntime();
  const store = openSessionStore(':memory:');
  try {
    const lifecycle = testLifecycle({ driver: runtime, store, config: { ...config, keepFailed: true } });
    store.create({ id: 'cut', mode: 'plain', count: 1, payloadBytes: 8, rate: null });
    runtime.addNetwork('cut');
    runtime.addContainer('cut', 'probe');
    const final = await lifecycle.finish('cut', { cause: 'interrupted' });
    assert.equal([final.state, final.transitions.at(-1)!.reason], ['failed', RESTARTED_DURING_CREATE]);
    assert.equal([runtime.containers.size, runtime.networks.size], [0, 0]);
    assert.not.ok(runtime.calls.some((c) => c.startsWith('stopContainer')), 'removed, not stopped first');
  } finally {
    store.close();
  }
});

test.run();

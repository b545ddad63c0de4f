import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeRuntime } from '../support/fake-runtime.js';
import { callOp, opContext } from '../support/op-context.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { SessionBus } from '../../src/sessions/events.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { sessionOps } from '../../src/ops/session-ops.js';
import { SessionLifecycle } from '../../src/sessions/lifecycle.js';
import { EdgeechoError } from '../../protocol/errors.js';
import type { Role } from '../../src/runtime/driver.js';

const { config } = loadConfig({ env: { EDGEECHO_MAX_COUNT: '1000', EDGEECHO_MAX_PAYLOAD_BYTES: '128' } });

function setup(admit: (session: string, roles: readonly Role[]) => void = () => undefined) {
  const driver = new FakeRuntime();
  const store = openSessionStore(':memory:');
  const bus = new SessionBus();
  const released: string[] = [];
  const admission = { admit, release: (session: string) => void released.push(session), adopt: () => undefined };
  const lifecycle = new SessionLifecycle({ driver, store, bus, admission, config, log: silentLogger });
  const ops = sessionOps({ lifecycle, store, config });
  return { driver, store, bus, ops, released, lifecycle };
}
const fails = (p: Promise<unknown>): Promise<EdgeechoError> =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: EdgeechoError) => e,
  );

test('create: plain session result, record and step order', async () => {
  const { ops, store, driver } = setup();
  const ctx = opContext();
  const r = await callOp(ops, 'session.create', { mode: 'plain', count: 100 }, ctx);
  assert.match(r.id, /^[a-z2-7]{10}$/);
  assert.equal(r.location, { host: '127.0.0.1', port: 49153 });
  assert.equal(r.containers.map((c: { role: string }) => c.role), ['probe', 'stream']);
  assert.equal(r.probe, { port: 7000, probe_id: r.id, count: 100 });
  assert.is(store.get(r.id)!.state, 'ready');
  assert.is(store.get(r.id)!.containers.length, 2);
  const calls = driver.calls;
  assert.ok(calls.indexOf('createNetwork edgeecho-' + r.id + '-net') < calls.indexOf('createContainer probe'));
  for (const role of ['probe', 'stream']) assert.ok(calls.indexOf(`createContainer ${role}`) < calls.indexOf(`startContainer ${role}`));
  // the stream's readiness waits for the probe's: its ready line carries the probe details
  assert.ok(calls.indexOf('waitReady probe') < calls.indexOf('waitReady stream'));
  assert.ok(ctx.statuses.every((s) => s.session === r.id));
  const stream = [...driver.containers.values()].find((c) => c.role === 'stream')!;
  assert.equal(stream.env.STREAM_MODE, 'plain');
  assert.equal(stream.labels['io.edgeecho.role'], 'stream');
});

test('create: a short segmented session that relays everything and exits before the location step still gets its location', async () => {
  const { ops, store, driver } = setup();
  const waitReady = driver.waitReady.bind(driver);
  driver.waitReady = async (id, options) => {
    const info = await waitReady(id, options);
    // segmentation connected while the stream started: 10 frames went through and the stream server exited
    // right after printing its ready line, before the location step could look
    const c = driver.containers.get(id);
    if (c?.role === 'stream') c.running = false;
    return info;
  };
  const r = await callOp(ops, 'session.create', { mode: 'segmented', count: 10 }, opContext());
  assert.equal(r.location, { host: '127.0.0.1', port: 49153 });
  assert.is(store.get(r.id)!.state, 'ready');
});

test('create: arguments are bounded by config', async () => {
  const { ops } = setup();
  assert.match((await fails(callOp(ops, 'session.create', { mode: 'plain', count: 1001 }))).message, 'args.count');
  assert.match((await fails(callOp(ops, 'session.create', { mode: 'plain', count: 1, payload_bytes: 129 }))).message, 'args.payload_bytes');
  assert.is((await fails(callOp(ops, 'session.create', { mode: 'tee', count: 1 }))).code, 'BAD_REQUEST');
});

test('create: refusal by admission leaves nothing and records a failure', async () => {
  const { ops, driver, store } = setup(() => {
    throw new EdgeechoError('RESOURCE_EXHAUSTED', 'no room');
  });
  const err = await fails(callOp(ops, 'session.create', { mode: 'segmented', count: 1 }));
  assert.is(err.code, 'RESOURCE_EXHAUSTED');
  assert.equal(driver.calls, []);
  assert.is(store.list()[0]!.state, 'failed');
});

test('create: a failing ready rolls back containers, network and the reservation', async () => {
  const { ops, driver, released, store } = setup();
  driver.failures.set('waitReady:segmentation', new EdgeechoError('INTERNAL', 'segmentation exited with code 1'));
  const err = await fails(callOp(ops, 'session.create', { mode: 'segmented', count: 1 }));
  assert.match(err.message, 'ready segmentation');
  assert.is(driver.containers.size, 0);
  assert.is(driver.networks.size, 0);
  assert.is(released.length, 1);
  assert.equal(store.list()[0]!.error?.code, 'INTERNAL');
});

test('stop during create cancels it; the session ends stopped and removed', async () => {
  const { ops, driver, store } = setup();
  let open!: () => void;
  driver.readyGate = new Promise((r) => (open = r));
  const ctx = opContext();
  const creating = fails(callOp(ops, 'session.create', { mode: 'plain', count: 1 }, ctx));
  while (!driver.calls.includes('waitReady probe')) await new Promise((r) => setImmediate(r));
  const id = String(ctx.statuses[0]!.session);
  const stopped = await callOp(ops, 'session.stop', { id });
  const cancelled = await creating;
  assert.is(cancelled.code, 'CANCELLED');
  assert.is(cancelled.details?.step, 'ready probe');
  assert.is(stopped.state, 'stopped');
  assert.is(store.get(id)!.state, 'stopped');
  assert.is(driver.containers.size, 0);
  open();
});

test('a create the sweep expires (TTL) is cancelled and rolled back, and reports that outcome', async () => {
  const { ops, driver, store, lifecycle } = setup();
  let open!: () => void;
  driver.readyGate = new Promise((r) => (open = r));
  const ctx = opContext();
  const creating = fails(callOp(ops, 'session.create', { mode: 'plain', count: 1 }, ctx));
  while (!driver.calls.includes('waitReady probe')) await new Promise((r) => setImmediate(r));
  const id = String(ctx.statuses[0]!.session);
  await lifecycle.finish(id, { cause: 'expired', ttlS: 10, state: 'creating' });
  open();
  const err = await creating;
  assert.is(err.code, 'TIMEOUT');
  const record = store.get(id)!;
  assert.is(record.state, 'failed');
  assert.is(record.error!.code, 'TIMEOUT');
  assert.equal(ctx.statuses.at(-1), { ...ctx.statuses.at(-1), step: 'session', state: 'failed' });
  assert.is(driver.containers.size, 0);
  assert.is(driver.networks.size, 0);
});

test('stop and watch: the watcher gets the terminal state with final stats; stopping again only cleans up', async () => {
  const { ops, driver, released } = setup();
  const r = await callOp(ops, 'session.create', { mode: 'plain', count: 7 });
  const wctx = opContext(2);
  const watching = callOp(ops, 'session.watch', { id: r.id }, wctx);
  const stopped = await callOp(ops, 'session.stop', { id: r.id });
  assert.is(stopped.state, 'stopped');
  const final = await watching;
  assert.is(final.state, 'stopped');
  assert.is(final.containers.find((c: { role: string }) => c.role === 'probe').stats.frames, 7);
  assert.ok(wctx.statuses.some((s) => s.state === 'stopping'));
  assert.is(driver.containers.size, 0);
  assert.is(driver.networks.size, 0);
  assert.equal(released, [r.id]);
  const again = await callOp(ops, 'session.stop', { id: r.id });
  assert.is(again.state, 'stopped');
});

test('get, list and NOT_FOUND', async () => {
  const { ops } = setup();
  const r = await callOp(ops, 'session.create', { mode: 'plain', count: 1 });
  assert.is((await callOp(ops, 'session.get', { id: r.id })).state, 'ready');
  assert.is((await callOp(ops, 'session.list', { state: 'ready' })).sessions.length, 1);
  assert.is((await callOp(ops, 'session.list', { state: 'failed' })).sessions.length, 0);
  assert.is((await fails(callOp(ops, 'session.get', { id: 'aaaaaaaaaa' }))).code, 'NOT_FOUND');
  assert.is((await fails(callOp(ops, 'session.watch', { id: 'aaaaaaaaaa' }))).code, 'NOT_FOUND');
});

test('list pages: at most limit views with a next cursor; before: next gives the rest once, newest first; the bound is MAX_LIST_LIMIT', async () => {
  const { ops, store } = setup();
  const ids = ['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc', 'dddddddddd', 'eeeeeeeeee'];
  // two share a creation time: the cursor must not skip or repeat either
  ids.forEach((id, i) => store.create({ id, mode: 'plain', count: 1, payloadBytes: 64, rate: null }, 1000 + Math.min(i, 3)));
  const seen: string[] = [];
  let before: string | null = null;
  for (let page = 0; page < 5; page++) {
    const r = await callOp(ops, 'session.list', { limit: 2, ...(before ? { before } : {}) });
    assert.ok(r.sessions.length <= 2);
    seen.push(...r.sessions.map((v: { id: string }) => v.id));
    before = r.next;
    if (before === null) break;
  }
  assert.equal(seen, ['dddddddddd', 'eeeeeeeeee', 'cccccccccc', 'bbbbbbbbbb', 'aaaaaaaaaa']);
  assert.is((await callOp(ops, 'session.list', { limit: 5 })).next, null, 'no next when the page holds the rest');
  const over = await fails(callOp(ops, 'session.list', { limit: 501 }));
  assert.is(over.code, 'BAD_REQUEST');
  assert.match(over.message, '500');
  assert.is((await fails(callOp(ops, 'session.list', { before: 'not-a-cursor' }))).code, 'BAD_REQUEST');
});

test('watch ends with CANCELLED when its request is cancelled', async () => {
  const { ops, bus } = setup();
  const r = await callOp(ops, 'session.create', { mode: 'plain', count: 1 });
  const ctx = opContext();
  const watching = fails(callOp(ops, 'session.watch', { id: r.id }, ctx));
  ctx.controller.abort();
  assert.is((await watching).code, 'CANCELLED');
  assert.is(bus.watched, 0);
});

test.run();

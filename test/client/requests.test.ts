import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, EdgeechoError, type Client, type StatusFrame } from '../../src/client/index.js';
import { startTestDaemon, type TestDaemon } from '../support/client-daemon.js';

let daemon: TestDaemon;
let client: Client;

test.before(async () => {
  daemon = await startTestDaemon();
});
test.after(async () => {
  await daemon?.stop();
});
test.before.each(async () => {
  client = await connect({ port: daemon.port, client: 'requests.test', keepaliveMs: 0 });
});
test.after.each(async () => {
  await client?.close();
});

async function rejection(promise: Promise<unknown>): Promise<EdgeechoError> {
  try {
    await promise;
  } catch (err) {
    assert.instance(err, EdgeechoError);
    return err as EdgeechoError;
  }
  throw new Error('expected a rejection');
}

const until = async (check: () => boolean, what: string, ms = 2_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('greeting and hello against the real daemon', async () => {
  assert.is(client.greeting?.server, 'edgeecho');
  assert.equal(client.greeting?.protocols, [1]);
  assert.is(client.protocol, 1);
  assert.is(client.helloResult?.server, 'edgeecho');
  assert.type(client.helloResult?.conn, 'string');
});

test('request resolves with the result data, ping included', async () => {
  const pong = await client.request<{ pong: boolean; time: number }>('ping');
  assert.is(pong.pong, true);
  assert.equal(await client.request('test.echo', { i: 1, text: 'two', big: 2 ** 40 }), { i: 1, text: 'two', big: 2 ** 40 });
});

test('errors reject as EdgeechoError with the wire code and details', async () => {
  const failed = await rejection(client.request('test.fail', { code: 'NOT_FOUND', message: 'no session s1' }));
  assert.is(failed.code, 'NOT_FOUND');
  assert.is(failed.message, 'no session s1');
  assert.equal(failed.details, { asked: 'NOT_FOUND' });
  assert.is((await rejection(client.request('no.such.op'))).code, 'UNKNOWN_OP');
  assert.is((await rejection(client.request('test.steps', { n: 'x' }))).code, 'BAD_REQUEST');
});

test('status frames reach onStatus and the iterator, in order, before the result', async () => {
  const seen: StatusFrame[] = [];
  const data = await client.request('test.steps', { n: 3 }, { onStatus: (s) => seen.push(s) });
  assert.equal(data, { done: 3 });
  assert.equal(seen.map((s) => s.i), [0, 1, 2]);
  assert.ok(seen.every((s) => s.kind === 'status' && s.step === 'tick'));

  const call = client.call('test.steps', { n: 4, ms: 5 });
  const iterated: number[] = [];
  for await (const s of call.status) iterated.push(s.i as number);
  assert.equal(iterated, [0, 1, 2, 3]);
  assert.equal(await call.result, { done: 4 });

  const gen = client.stream('test.steps', { n: 2 });
  const streamed: unknown[] = [];
  let step = await gen.next();
  while (!step.done) {
    streamed.push(step.value.i);
    step = await gen.next();
  }
  assert.equal(streamed, [0, 1]);
  assert.equal(step.value, { done: 2 });
});

test('aborting a signal rejects with CANCELLED and sends cancel, which aborts the handler', async () => {
  const abort = new AbortController();
  let waiting = false;
  const pending = client.request('test.wait', { tag: 'signal' }, { signal: abort.signal, onStatus: () => (waiting = true) });
  await until(() => waiting, 'the first status');
  abort.abort();
  const err = await rejection(pending);
  assert.is(err.code, 'CANCELLED');
  await until(() => daemon.aborted.includes('signal'), 'the daemon handler to see its abort');
  assert.equal(await client.request('ping').then((p: any) => p.pong), true, 'the connection stays usable');
});

test('timeoutMs rejects with TIMEOUT and cancels on the daemon', async () => {
  const err = await rejection(client.request('test.wait', { tag: 'timeout' }, { timeoutMs: 100 }));
  assert.is(err.code, 'TIMEOUT');
  assert.match(err.message, /100 ms \(timeoutMs\)/);
  await until(() => daemon.aborted.includes('timeout'), 'the daemon handler to see its abort');
});

test('leaving a stream early cancels the request', async () => {
  for await (const s of client.stream('test.wait', { tag: 'stream-break' })) {
    assert.is(s.step, 'waiting');
    break;
  }
  await until(() => daemon.aborted.includes('stream-break'), 'the daemon handler to see its abort');
});

test('an already aborted signal never sends the request', async () => {
  const abort = new AbortController();
  abort.abort();
  const err = await rejection(client.request('test.wait', { tag: 'pre-aborted' }, { signal: abort.signal }));
  assert.is(err.code, 'CANCELLED');
  await client.request('ping');
  assert.not.ok(daemon.aborted.includes('pre-aborted'));
});

test('many concurrent requests each get their own answer', async () => {
  const n = 500;
  const results = await Promise.all(Array.from({ length: n }, (_, i) => client.request<{ i: number }>('test.echo', { i })));
  assert.equal(results.map((r) => r.i), Array.from({ length: n }, (_, i) => i));
  assert.is(client.inflightCount, 0);
});

test('events reach on("event") and events(topic)', async () => {
  const all: string[] = [];
  client.on('event', (e) => all.push(e.topic));
  const iterator = client.events('news')[Symbol.asyncIterator]();
  const next = iterator.next();
  await client.request('test.event', { topic: 'other' });
  await client.request('test.event', { topic: 'news' });
  const got = await next;
  assert.is(got.value?.topic, 'news');
  assert.equal(got.value?.data, { from: 3 });
  assert.equal(all, ['other', 'news']);
  await iterator.return?.();
});

test('unix socket connection', async () => {
  const unix = await connect({ path: daemon.socket, keepaliveMs: 0 });
  try {
    assert.is((await unix.request<{ pong: boolean }>('ping')).pong, true);
    assert.match(unix.peer, /unix socket/);
  } finally {
    await unix.close();
  }
});

test('daemon shutdown rejects what is still pending with the daemon\'s code or CONNECTION_CLOSED', async () => {
  const own = await startTestDaemon({ env: { EDGEECHO_SHUTDOWN_TIMEOUT_MS: '0' } });
  try {
    const c = await connect({ port: own.port, keepaliveMs: 0 });
    let waiting = false;
    const pending = c.request('test.wait', { tag: 'shutdown' }, { onStatus: () => (waiting = true) });
    await until(() => waiting, 'the first status');
    const closed = new Promise((resolve) => c.once('close', resolve));
    await own.daemon.shutdown();
    const err = await rejection(pending);
    assert.ok(['SHUTTING_DOWN', 'CONNECTION_CLOSED'].includes(err.code), err.code);
    await closed;
    assert.is((await rejection(c.request('ping'))).code, 'CONNECTION_CLOSED');
  } finally {
    await own.stop();
  }
});

test('token auth: right token passes, wrong one is UNAUTHENTICATED', async () => {
  const own = await startTestDaemon({ token: 'sesame' });
  try {
    const ok = await connect({ port: own.port, token: 'sesame', keepaliveMs: 0 });
    assert.equal(ok.greeting?.auth, ['token']);
    await ok.close();
    const err = await rejection(connect({ port: own.port, token: 'wrong', keepaliveMs: 0 }));
    assert.is(err.code, 'UNAUTHENTICATED');
  } finally {
    await own.stop();
  }
});

test.run();

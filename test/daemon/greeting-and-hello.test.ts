import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SUPPORTED_PROTOCOLS, PROTOCOL_VERSION } from '../../protocol/messages.js';
import type { Peer } from '../../src/daemon/listen.js';
import { startDaemon, WireClient } from './wire-client.js';

const echoOp = { name: 'echo', summary: 'echo', args: { text: { type: 'string' as const } }, handler: async (a: { text?: string }) => ({ text: a.text }) };

test('the greeting is the first frame and names the server, versions, auth and max_frame', async () => {
  const d = await startDaemon({ maxFrame: 4096 });
  const c = await WireClient.connect(d.port);
  try {
    const g = await c.waitFor(() => true);
    assert.equal(g, { kind: 'hello', server: 'edgeecho', version: g.version, protocol: PROTOCOL_VERSION, protocols: [...SUPPORTED_PROTOCOLS], auth: [], max_frame: 4096 });
    assert.type(g.version, 'string');
  } finally {
    c.close();
    await d.stop();
  }
});

test('before hello only ping and hello run; other ops get UNAUTHENTICATED', async () => {
  const d = await startDaemon({}, [echoOp]);
  const c = await WireClient.connect(d.port);
  try {
    const pong = await c.request({ id: 1, op: 'ping' });
    assert.is(pong.kind, 'result');
    assert.is(pong.data.pong, true);
    assert.type(pong.data.time, 'number');
    const gated = await c.request({ id: 2, op: 'echo', args: { text: 'x' } });
    assert.is(gated.error.code, 'UNAUTHENTICATED');
    const unknown = await c.request({ id: 3, op: 'nope' });
    assert.is(unknown.error.code, 'UNAUTHENTICATED', 'unknown ops do not reveal the op list before hello');
    const cancel = await c.request({ id: 4, op: 'cancel', args: { target: 1 } });
    assert.is(cancel.error.code, 'UNAUTHENTICATED');
    const hello = await c.request({ id: 5, op: 'hello', args: { client: 'tests', protocol: 1 } });
    assert.equal(hello.data.protocol, 1);
    assert.is(hello.data.server, 'edgeecho');
    assert.type(hello.data.conn, 'string');
    const echoed = await c.request({ id: 6, op: 'echo', args: { text: 'x' } });
    assert.equal(echoed, { id: 6, kind: 'result', data: { text: 'x' } });
    const again = await c.request({ id: 7, op: 'hello', args: { client: 'tests', protocol: 1 } });
    assert.is(again.error.code, 'CONFLICT');
  } finally {
    c.close();
    await d.stop();
  }
});

test('hello answers the instance id the daemon was given, and the greeting stays the same; without one hello has none', async () => {
  const d = await startDaemon({}, [], { instance: 'q4mzt7k2vb3x' });
  const plain = await startDaemon();
  const c = await WireClient.connect(d.port);
  const p = await WireClient.connect(plain.port);
  try {
    const g = await c.waitFor(() => true);
    assert.not.ok('instance' in g, 'the greeting is unchanged: the instance comes with hello');
    const hello = await c.request({ id: 1, op: 'hello', args: { client: 'tests', protocol: 1 } });
    assert.equal(hello.data, { server: 'edgeecho', version: hello.data.version, protocol: 1, conn: hello.data.conn, instance: 'q4mzt7k2vb3x' });
    const none = await p.request({ id: 1, op: 'hello', args: { client: 'tests', protocol: 1 } });
    assert.not.ok('instance' in none.data);
  } finally {
    c.close();
    p.close();
    await d.stop();
    await plain.stop();
  }
});

test('hello with a protocol the daemon does not speak gets UNSUPPORTED_PROTOCOL listing the supported ones; a retry works', async () => {
  const d = await startDaemon();
  const c = await WireClient.connect(d.port);
  try {
    const bad = await c.request({ id: 1, op: 'hello', args: { client: 'tests', protocol: 99 } });
    assert.is(bad.error.code, 'UNSUPPORTED_PROTOCOL');
    assert.equal(bad.error.details.supported, [...SUPPORTED_PROTOCOLS]);
    assert.is(bad.error.details.requested, 99);
    const missing = await c.request({ id: 2, op: 'hello', args: { client: 'tests' } });
    assert.is(missing.error.code, 'BAD_REQUEST');
    assert.match(missing.error.message, 'args.protocol');
    const ok = await c.request({ id: 3, op: 'hello', args: { client: 'tests', protocol: 1 } });
    assert.is(ok.kind, 'result');
  } finally {
    c.close();
    await d.stop();
  }
});

test('with an authenticate hook the greeting lists token auth and hello needs an accepted token', async () => {
  const seen: Array<{ token: string | undefined; peer: Peer }> = [];
  const authenticate = async (token: string | undefined, peer: Peer): Promise<boolean> => {
    seen.push({ token, peer });
    return token === 's3cret';
  };
  const d = await startDaemon({}, [echoOp], { authenticate });
  const c = await WireClient.connect(d.port);
  try {
    const g = await c.waitFor((f) => f.kind === 'hello');
    assert.equal(g.auth, ['token']);
    const none = await c.request({ id: 1, op: 'hello', args: { client: 't', protocol: 1 } });
    assert.is(none.error.code, 'UNAUTHENTICATED');
    const wrong = await c.request({ id: 2, op: 'hello', args: { client: 't', protocol: 1, token: 'guess' } });
    assert.is(wrong.error.code, 'UNAUTHENTICATED');
    assert.is((await c.request({ id: 3, op: 'echo' })).error.code, 'UNAUTHENTICATED');
    const right = await c.request({ id: 4, op: 'hello', args: { client: 't', protocol: 1, token: 's3cret' } });
    assert.is(right.kind, 'result');
    assert.is((await c.request({ id: 5, op: 'echo' })).kind, 'result');
    assert.equal(seen.map((s) => s.token), ['guess', 's3cret'], 'the hook is not asked when no token came');
    assert.is(seen[0]!.peer.transport, 'tcp');
    assert.is(seen[0]!.peer.address, '127.0.0.1');
  } finally {
    c.close();
    await d.stop();
  }
});

test('an authenticate hook that throws refuses with its own error code and closes the connection', async () => {
  const { EdgeechoError } = await import('../../protocol/errors.js');
  const authenticate = async (): Promise<boolean> => {
    throw new EdgeechoError('RESOURCE_EXHAUSTED', 'too many failed hellos from 127.0.0.1');
  };
  const d = await startDaemon({}, [], { authenticate });
  const c = await WireClient.connect(d.port);
  try {
    const r = await c.request({ id: 1, op: 'hello', args: { client: 't', protocol: 1, token: 'x' } });
    assert.is(r.error.code, 'RESOURCE_EXHAUSTED');
    await c.waitClosed();
  } finally {
    c.close();
    await d.stop();
  }
});

test.run();

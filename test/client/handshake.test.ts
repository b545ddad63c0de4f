import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, EdgeechoError } from '../../src/client/index.js';
import { FAKE_GREETING, startFakeServer } from '../support/fake-server.js';

async function rejection(promise: Promise<unknown>): Promise<EdgeechoError> {
  try {
    await promise;
  } catch (err) {
    assert.instance(err, EdgeechoError);
    return err as EdgeechoError;
  }
  throw new Error('expected a rejection');
}

test('sends hello with client name, chosen protocol and token, and keeps the greeting', async () => {
  const server = await startFakeServer({
    greeting: { ...FAKE_GREETING, protocols: [3, 1], protocol: 3 },
    handle: (req, conn) => conn.writer.send({ id: req.id, kind: 'result', data: { protocol: 1, conn: 'c1' } }),
  });
  try {
    const client = await connect({ port: server.port, token: 's3cret', client: 'unit-test', keepaliveMs: 0 });
    try {
      assert.is(client.greeting?.server, 'edgeecho');
      assert.is(client.protocol, 1);
      assert.equal(client.helloResult, { protocol: 1, conn: 'c1' });
      const hello = server.connections[0]!.received[0]!;
      assert.equal(hello, { id: 1, op: 'hello', args: { client: 'unit-test', protocol: 1, token: 's3cret' } });
    } finally {
      await client.close();
    }
  } finally {
    await server.close();
  }
});

test('no protocol in common -> UNSUPPORTED_PROTOCOL naming both lists, and no hello sent', async () => {
  const server = await startFakeServer({ greeting: { ...FAKE_GREETING, protocol: 7, protocols: [7, 8] } });
  try {
    const err = await rejection(connect({ port: server.port, keepaliveMs: 0 }));
    assert.is(err.code, 'UNSUPPORTED_PROTOCOL');
    assert.match(err.message, /\[7, 8\]/);
    assert.match(err.message, /\[1\]/);
    assert.is(server.connections[0]!.received.length, 0);
  } finally {
    await server.close();
  }
});

test('a refusal before the greeting rejects with the daemon\'s code', async () => {
  const server = await startFakeServer({ refuse: { id: null, kind: 'error', error: { code: 'RESOURCE_EXHAUSTED', message: 'connection limit 1 reached (EDGEECHO_MAX_CONNECTIONS)' } } });
  try {
    const err = await rejection(connect({ port: server.port, keepaliveMs: 0 }));
    assert.is(err.code, 'RESOURCE_EXHAUSTED');
    assert.match(err.message, /connection limit/);
  } finally {
    await server.close();
  }
});

test('hello refused -> connect rejects with UNAUTHENTICATED', async () => {
  const server = await startFakeServer({
    handle: (req, conn) => conn.writer.send({ id: req.id, kind: 'error', error: { code: 'UNAUTHENTICATED', message: 'token refused' } }),
  });
  try {
    const err = await rejection(connect({ port: server.port, token: 'wrong', keepaliveMs: 0 }));
    assert.is(err.code, 'UNAUTHENTICATED');
  } finally {
    await server.close();
  }
});

test('no greeting within connectTimeoutMs -> TIMEOUT naming the option', async () => {
  const server = await startFakeServer({ greeting: null });
  try {
    const started = Date.now();
    const err = await rejection(connect({ port: server.port, connectTimeoutMs: 150, keepaliveMs: 0 }));
    assert.is(err.code, 'TIMEOUT');
    assert.match(err.message, /150 ms \(connectTimeoutMs\)/);
    assert.ok(Date.now() - started < 2_000);
  } finally {
    await server.close();
  }
});

test('nothing listening -> CONNECTION_CLOSED naming the address and the flags', async () => {
  const server = await startFakeServer();
  const port = server.port;
  await server.close();
  const err = await rejection(connect({ port, keepaliveMs: 0 }));
  assert.is(err.code, 'CONNECTION_CLOSED');
  assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  assert.match(err.message, /--host\/--port/);
});

test('bad options are refused before any socket is opened', async () => {
  const err = await rejection(connect({ host: 'localhost' }));
  assert.is(err.code, 'BAD_REQUEST');
});

test.run();

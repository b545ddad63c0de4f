import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, EdgeechoError } from '../../src/client/index.js';
import { startFakeServer } from '../support/fake-server.js';

test('the daemon dropping the connection rejects every pending request with CONNECTION_CLOSED', async () => {
  const server = await startFakeServer({
    handle: (req, conn) => {
      if (req.op === 'hello') conn.writer.send({ id: req.id, kind: 'result', data: { protocol: 1 } });
      else if (req.op === 'drop') conn.socket.destroy();
    },
  });
  try {
    const client = await connect({ port: server.port, keepaliveMs: 0 });
    const closed = new Promise<EdgeechoError | undefined>((resolve) => client.once('close', resolve));
    const silent = [1, 2, 3].map(() => client.request('never'));
    const drop = client.request('drop');
    const outcomes = await Promise.allSettled([...silent, drop]);
    for (const o of outcomes) {
      assert.is(o.status, 'rejected');
      const err = (o as PromiseRejectedResult).reason as EdgeechoError;
      assert.instance(err, EdgeechoError);
      assert.is(err.code, 'CONNECTION_CLOSED');
    }
    assert.is((await closed)?.code, 'CONNECTION_CLOSED');
    assert.is(client.inflightCount, 0);
    const late = await client.request('after').catch((e: EdgeechoError) => e);
    assert.is((late as EdgeechoError).code, 'CONNECTION_CLOSED');
  } finally {
    await server.close();
  }
});

test('close() rejects what is still pending and ends the socket', async () => {
  const server = await startFakeServer({
    handle: (req, conn) => {
      if (req.op === 'hello') conn.writer.send({ id: req.id, kind: 'result', data: { protocol: 1 } });
    },
  });
  try {
    const client = await connect({ port: server.port, keepaliveMs: 0 });
    const pending = client.request('never').catch((e: EdgeechoError) => e);
    await client.close();
    const err = (await pending) as EdgeechoError;
    assert.is(err.code, 'CONNECTION_CLOSED');
    assert.match(err.message, /closed by the client/);
    assert.ok(client.closed);
  } finally {
    await server.close();
  }
});

test.run();

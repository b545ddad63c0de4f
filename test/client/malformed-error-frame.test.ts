import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, EdgeechoError } from '../../src/client/index.js';
import { startFakeServer } from '../support/fake-server.js';

test('an error frame without a valid error map rejects its request with BAD_FRAME instead of throwing out of the socket', async () => {
  const server = await startFakeServer({
    handle: (req, conn) => {
      if (req.op === 'hello') conn.writer.send({ id: req.id, kind: 'result', data: { protocol: 1 } });
      else if (req.op === 'no-error') conn.writer.send({ id: req.id, kind: 'error' });
      else if (req.op === 'bad-error') conn.writer.send({ id: req.id, kind: 'error', error: 'boom' });
      else if (req.op === 'unmatched') conn.writer.send({ id: 999, kind: 'error', error: null });
      else conn.writer.send({ id: req.id, kind: 'result', data: null });
    },
  });
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    const client = await connect({ port: server.port, keepaliveMs: 0 });
    try {
      const unmatched: unknown[] = [];
      client.on('unmatched', (_frame, err) => unmatched.push(err));
      for (const op of ['no-error', 'bad-error']) {
        const err = await client.request(op, undefined, { timeoutMs: 2_000 }).catch((e: unknown) => e);
        assert.instance(err, EdgeechoError, op);
        assert.is((err as EdgeechoError).code, 'BAD_FRAME', op);
      }
      await client.request('unmatched', undefined, { timeoutMs: 200 }).catch(() => undefined);
      assert.is(await client.request('ok', undefined, { timeoutMs: 2_000 }), null, 'the connection still works');
      assert.is((unmatched[0] as EdgeechoError | undefined)?.code, 'BAD_FRAME');
      assert.equal(uncaught, []);
    } finally {
      await client.close();
    }
  } finally {
    process.off('uncaughtException', onUncaught);
    await server.close();
  }
});

test.run();

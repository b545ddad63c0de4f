import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { OpDefinition } from '../../src/ops/contract.js';
import { sleep, startDaemon, WireClient } from './wire-client.js';

let sawAbort = false;
const waitOp: OpDefinition<{ ms: number; ignoreAbort?: boolean }> = {
  name: 'wait',
  summary: 'test: resolve after ms',
  args: { ms: { type: 'int', required: true }, ignoreAbort: { type: 'boolean' } },
  handler: (args, ctx) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => resolve({ waited: args.ms }), args.ms);
      ctx.signal.addEventListener('abort', () => {
        sawAbort = true;
        if (args.ignoreAbort) return;
        clearTimeout(t);
        reject(ctx.signal.reason);
      });
    }),
};

test('graceful shutdown: in-flight requests finish, new ones get SHUTTING_DOWN, then connections close', async () => {
  const d = await startDaemon({ shutdownTimeoutMs: 2000 }, [waitOp]);
  const c = await WireClient.ready(d.port);
  const idle = await WireClient.ready(d.port);
  try {
    c.send({ id: 'long', op: 'wait', args: { ms: 150 } });
    await sleep(20);
    const stopped = d.stop();
    const event = await c.waitFor((f) => f.kind === 'event' && f.topic === 'shutdown');
    assert.is(event.data.deadline_ms, 2000);
    const refused = await c.request({ id: 'new', op: 'ping' });
    assert.is(refused.error.code, 'SHUTTING_DOWN');
    const done = await c.waitFor((f) => f.id === 'long' && f.kind !== 'status');
    assert.equal(done.data, { waited: 150 }, 'the request in flight finished normally');
    await stopped;
    await c.waitClosed();
    await idle.waitClosed();
    assert.is(d.daemon.connectionCount, 0);
  } finally {
    c.close();
    idle.close();
    await d.stop();
  }
});

test('the shutdown deadline aborts what is still running and ends it with SHUTTING_DOWN', async () => {
  sawAbort = false;
  const d = await startDaemon({ shutdownTimeoutMs: 100 }, [waitOp]);
  const c = await WireClient.ready(d.port);
  try {
    c.send({ id: 'stuck', op: 'wait', args: { ms: 10_000, ignoreAbort: true } });
    await sleep(20);
    const t0 = Date.now();
    await d.stop();
    const took = Date.now() - t0;
    assert.ok(took < 2000, `shutdown took ${took} ms; deadline was 100 ms`);
    await c.waitClosed();
    const terminal = c.frames.find((f) => f.id === 'stuck')!;
    assert.is(terminal.error.code, 'SHUTTING_DOWN');
    assert.match(terminal.error.message, 'EDGEECHO_SHUTDOWN_TIMEOUT_MS');
    assert.ok(sawAbort, 'the handler signal was aborted');
  } finally {
    c.close();
  }
});

test('shutdown waits for a detached op whose client already left', async () => {
  let finished = false;
  const detachedOp: OpDefinition = {
    name: 'create',
    summary: 'test: detached',
    args: {},
    detached: true,
    handler: async () => {
      await sleep(150);
      finished = true;
      return null;
    },
  };
  const d = await startDaemon({ shutdownTimeoutMs: 3000 }, [detachedOp]);
  const c = await WireClient.ready(d.port);
  try {
    c.send({ id: 1, op: 'create' });
    await sleep(20);
    c.close();
    await c.closed;
    await sleep(20);
    await d.stop();
    assert.ok(finished, 'shutdown returned only after the detached op finished');
  } finally {
    c.close();
  }
});

test('after shutdown the listener accepts no connections', async () => {
  const d = await startDaemon();
  await d.stop();
  await WireClient.connect(d.port).then(
    (c) => {
      c.close();
      assert.unreachable('connected after shutdown');
    },
    (err: NodeJS.ErrnoException) => assert.is(err.code, 'ECONNREFUSED'),
  );
  await d.stop();
});

test.run();

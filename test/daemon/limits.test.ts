import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { OpDefinition } from '../../src/ops/contract.js';
import { sleep, startDaemon, WireClient } from './wire-client.js';

const holdOp: OpDefinition<{ ms: number }> = {
  name: 'hold',
  summary: 'test: resolve after ms or on abort',
  args: { ms: { type: 'int', required: true } },
  handler: (args, ctx) =>
    new Promise((resolve) => {
      const t = setTimeout(() => resolve({ held: args.ms }), args.ms);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve(null);
      });
    }),
};

/** Emits 1 KiB status frames as fast as it can until aborted (bounded at 256 MiB). */
let floodSent = 0;
const floodOp: OpDefinition = {
  name: 'flood',
  summary: 'test: status frames until aborted',
  args: {},
  handler: async (_a, ctx) => {
    const blob = 'x'.repeat(1024);
    for (floodSent = 0; floodSent < 256 * 1024 && !ctx.signal.aborted; floodSent++) {
      ctx.status({ blob });
      if (floodSent % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    return null;
  },
};

test('max in-flight: the request over the limit gets RESOURCE_EXHAUSTED, the others finish', async () => {
  const d = await startDaemon({ maxInflight: 3 }, [holdOp]);
  const c = await WireClient.ready(d.port);
  try {
    for (let i = 0; i < 3; i++) c.send({ id: i, op: 'hold', args: { ms: 100 } });
    const over = await c.request({ id: 3, op: 'hold', args: { ms: 1 } });
    assert.is(over.error.code, 'RESOURCE_EXHAUSTED');
    assert.match(over.error.message, 'EDGEECHO_MAX_INFLIGHT');
    assert.is((await c.request({ id: 4, op: 'ping' })).kind, 'result', 'ping is not counted in flight');
    for (let i = 0; i < 3; i++) assert.is((await c.waitFor((f) => f.id === i && f.kind === 'result')).data.held, 100);
    assert.is((await c.request({ id: 5, op: 'hold', args: { ms: 1 } })).kind, 'result', 'room again once they finished');
  } finally {
    c.close();
    await d.stop();
  }
});

test('max in-flight: a cancel still runs when the connection is at the limit', async () => {
  const d = await startDaemon({ maxInflight: 2 }, [holdOp]);
  const c = await WireClient.ready(d.port);
  try {
    for (let i = 0; i < 2; i++) c.send({ id: i, op: 'hold', args: { ms: 10_000 } });
    const cancel = await c.request({ id: 'cancel-0', op: 'cancel', args: { target: 0 } });
    assert.is(cancel.kind, 'result', JSON.stringify(cancel));
    assert.equal(cancel.data, { cancelled: true });
    assert.is((await c.waitFor((f) => f.id === 0 && f.kind === 'error')).error.code, 'CANCELLED');
    c.send({ id: 'cancel-1', op: 'cancel', args: { target: 1 } });
    assert.is((await c.waitFor((f) => f.id === 1 && f.kind === 'error')).error.code, 'CANCELLED');
  } finally {
    c.close();
    await d.stop();
  }
});

test('max connections: one over the limit gets RESOURCE_EXHAUSTED instead of the greeting, then close', async () => {
  const d = await startDaemon({ maxConnections: 2 });
  const a = await WireClient.ready(d.port);
  const b = await WireClient.ready(d.port);
  const extra = await WireClient.connect(d.port);
  let later: WireClient | null = null;
  try {
    await extra.waitClosed();
    assert.is(extra.frames.length, 1);
    assert.is(extra.frames[0]!.error.code, 'RESOURCE_EXHAUSTED');
    assert.is(extra.frames[0]!.id, null);
    a.close();
    await a.closed;
    const t0 = Date.now();
    while (d.daemon.connectionCount > 1 && Date.now() - t0 < 2000) await sleep(5);
    later = await WireClient.ready(d.port);
    assert.is((await later.request({ id: 1, op: 'ping' })).kind, 'result');
    assert.ok(b.isOpen);
  } finally {
    for (const c of [a, b, extra, later]) c?.close();
    await d.stop();
  }
});

test('handshake timeout: no hello within the limit gets TIMEOUT then close; a hello in time is not cut', async () => {
  const d = await startDaemon({ handshakeTimeoutMs: 120 });
  const slow = await WireClient.connect(d.port);
  const quick = await WireClient.ready(d.port);
  try {
    slow.send({ id: 1, op: 'ping' });
    await slow.waitClosed(2000);
    const err = slow.frames.find((f) => f.kind === 'error')!;
    assert.is(err.id, null);
    assert.is(err.error.code, 'TIMEOUT');
    assert.match(err.error.message, 'EDGEECHO_HANDSHAKE_TIMEOUT_MS');
    await sleep(150);
    assert.ok(quick.isOpen);
  } finally {
    slow.close();
    quick.close();
    await d.stop();
  }
});

test('idle timeout: closes a quiet connection; ping or a request in flight keeps it open', async () => {
  const d = await startDaemon({ idleTimeoutMs: 150 }, [holdOp]);
  const quiet = await WireClient.ready(d.port);
  const pinger = await WireClient.ready(d.port);
  const busy = await WireClient.ready(d.port);
  try {
    busy.send({ id: 'h', op: 'hold', args: { ms: 400 } });
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < 400) {
      await pinger.request({ id: n++, op: 'ping' });
      await sleep(40);
    }
    assert.not.ok(quiet.isOpen, 'the quiet connection was closed');
    const err = quiet.frames.find((f) => f.kind === 'error')!;
    assert.is(err.error.code, 'TIMEOUT');
    assert.match(err.error.message, 'EDGEECHO_IDLE_TIMEOUT_MS');
    assert.ok(pinger.isOpen, 'ping kept its connection open');
    const held = await busy.waitFor((f) => f.id === 'h' && f.kind === 'result', 2000);
    assert.is(held.data.held, 400, 'the request in flight kept its connection open past the idle limit');
    await busy.waitClosed(2000);
  } finally {
    for (const c of [quiet, pinger, busy]) c.close();
    await d.stop();
  }
});

test('a client that stops reading is disconnected once maxWriteBuffer is exceeded; others carry on', async () => {
  const d = await startDaemon({ maxWriteBuffer: 256 * 1024 }, [floodOp]);
  const stalled = await WireClient.ready(d.port);
  const other = await WireClient.ready(d.port);
  try {
    stalled.socket.pause();
    stalled.send({ id: 'f', op: 'flood' });
    // a paused client cannot see the close, so watch the daemon's side
    const t0 = Date.now();
    while (d.daemon.connectionCount > 1 && Date.now() - t0 < 10_000) await sleep(20);
    assert.is(d.daemon.connectionCount, 1, 'the stalled client was disconnected');
    assert.ok(floodSent < 256 * 1024, `the flood was stopped by the disconnect (sent ${floodSent} KiB)`);
    stalled.socket.resume();
    await stalled.waitClosed(5000);
    assert.is((await other.request({ id: 1, op: 'ping' })).kind, 'result');
  } finally {
    stalled.close();
    other.close();
    await d.stop();
  }
});

test('a pipelining client that reads slowly is throttled, not disconnected', async () => {
  const d = await startDaemon({ maxWriteBuffer: 64 * 1024 });
  const c = await WireClient.ready(d.port);
  try {
    const { encodeFrame } = await import('../../protocol/codec.js');
    const n = 20_000;
    const frames: Buffer[] = [];
    for (let i = 0; i < n; i++) frames.push(encodeFrame({ id: i, op: 'ping' }));
    c.socket.pause();
    c.sendRaw(Buffer.concat(frames));
    await sleep(200);
    c.socket.resume();
    await c.waitFor(() => c.frames.length >= n + 2, 10_000);
    assert.ok(c.isOpen);
    assert.is(c.frames.at(-1)!.id, n - 1);
  } finally {
    c.close();
    await d.stop();
  }
});

test.run();

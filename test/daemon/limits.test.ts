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

test('max in-flight: the request over the limit is not refused but left unread until a slot frees', async () => {
  const d = await startDaemon({ maxInflight: 3 }, [holdOp]);
  const c = await WireClient.ready(d.port);
  try {
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) c.send({ id: i, op: 'hold', args: { ms: 300 } });
    c.send({ id: 3, op: 'hold', args: { ms: 1 } });
    c.send({ id: 4, op: 'ping' });
    const over = await c.waitFor((f) => f.id === 3 && f.kind !== 'status', 5000);
    assert.is(over.kind, 'result', JSON.stringify(over));
    assert.ok(Date.now() - t0 >= 290, `the fourth request ran only once one of the first three finished (${Date.now() - t0} ms)`);
    const order = c.frames.filter((f) => f.kind === 'result').map((f) => f.id);
    assert.ok(order.indexOf(0) < order.indexOf(3), `answers in order ${JSON.stringify(order)}`);
    assert.is((await c.waitFor((f) => f.id === 4)).kind, 'result', 'the ping queued behind it is answered after it');
    assert.not.ok(c.frames.some((f) => f.kind === 'error'), 'nothing was refused');
    assert.ok(d.daemon.stats.readPauses >= 1, 'the pause was counted');
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

/** Answers 64 KiB at once: a few of them fill a socket's send buffer. */
const blobOp: OpDefinition = { name: 'blob', summary: 'test: a 64 KiB result', args: {}, handler: async () => ({ blob: 'x'.repeat(64 * 1024) }) };

test('a client that stops reading under maxWriteBuffer is disconnected after the stall timeout, its requests left unread', async () => {
  const d = await startDaemon({ stallTimeoutMs: 300 }, [blobOp]);
  const stalled = await WireClient.ready(d.port);
  try {
    stalled.socket.pause();
    const { encodeFrame } = await import('../../protocol/codec.js');
    const frames: Buffer[] = [];
    for (let i = 0; i < 2000; i++) frames.push(encodeFrame({ id: i, op: 'blob' }));
    stalled.sendRaw(Buffer.concat(frames));
    const t0 = Date.now();
    while (d.daemon.connectionCount > 0 && Date.now() - t0 < 5000) await sleep(20);
    assert.is(d.daemon.connectionCount, 0, 'the stalled client was disconnected');
    assert.is(d.daemon.stats.disconnects.stalled, 1, JSON.stringify(d.daemon.stats));
    assert.is(d.daemon.stats.disconnects.write_buffer, 0, 'reading stopped long before 8 MiB were waiting');
    assert.ok(d.daemon.stats.framesIn < 2000 / 2, `most requests were never read (${d.daemon.stats.framesIn} of 2001 handled)`);
  } finally {
    stalled.close();
    await d.stop();
  }
});

test('a flooding connection does not hold the loop: a ping on another connection is answered while the flood is queued', async () => {
  const d = await startDaemon({});
  const flooder = await WireClient.ready(d.port);
  const other = await WireClient.ready(d.port);
  try {
    const { encodeFrame } = await import('../../protocol/codec.js');
    const n = 100_000;
    const one = encodeFrame({ id: 1, op: 'ping' });
    flooder.sendRaw(Buffer.concat(Array.from({ length: n }, () => one)));
    await flooder.waitFor(() => flooder.frames.length > 10, 5000);
    const answer = await other.request({ id: 'p', op: 'ping' });
    assert.is(answer.kind, 'result');
    const seen = flooder.frames.length - 2;
    assert.ok(seen < n, `the other ping was answered after ${seen} of ${n} flood answers`);
    await flooder.waitFor(() => flooder.frames.length >= n + 2, 20_000);
  } finally {
    flooder.close();
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

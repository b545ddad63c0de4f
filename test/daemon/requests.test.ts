import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EdgeechoError } from '../../protocol/errors.js';
import type { OpContext, OpDefinition } from '../../src/ops/contract.js';
import { prng, sleep, startDaemon, WireClient } from './wire-client.js';

/** Answers after `ms`, with a status frame first; honours its signal. */
const delayOp: OpDefinition<{ ms: number; tag?: string }> = {
  name: 'delay',
  summary: 'test: answer after ms',
  args: { ms: { type: 'int', required: true, min: 0, max: 10_000 }, tag: { type: 'string' } },
  handler: (args, ctx: OpContext) =>
    new Promise((resolve, reject) => {
      ctx.status({ step: 'waiting', ms: args.ms });
      const timer = setTimeout(() => resolve({ tag: args.tag ?? null, waited: args.ms }), args.ms);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        aborted.push(ctx.id);
        reject(ctx.signal.reason);
      });
    }),
};
const aborted: unknown[] = [];

const failOp: OpDefinition<{ kind: string }> = {
  name: 'fail',
  summary: 'test: throws',
  args: { kind: { type: 'enum', values: ['edgeecho', 'plain', 'sync', 'undefined'], required: true } },
  handler: (args) => {
    if (args.kind === 'sync') throw new Error('thrown synchronously');
    if (args.kind === 'undefined') return Promise.resolve(undefined);
    return Promise.reject(args.kind === 'edgeecho' ? new EdgeechoError('NOT_FOUND', 'no session s1', { session: 's1' }) : new TypeError('boom'));
  },
};

const ops = [delayOp, failOp];

test('many requests in flight are answered out of order, each with status frames before exactly one terminal', async () => {
  const d = await startDaemon({ maxInflight: 1000 }, ops);
  const c = await WireClient.ready(d.port);
  try {
    const rnd = prng(42);
    const n = 300;
    const delays = new Map<unknown, number>();
    for (let i = 0; i < n; i++) {
      const id = i % 3 === 0 ? `s-${i}` : i;
      const ms = Math.floor(rnd() * 40);
      delays.set(id, ms);
      c.send({ id, op: 'delay', args: { ms, tag: String(i) } });
    }
    await c.waitFor(() => c.frames.filter((f) => f.kind === 'result' && f.id !== 'hello').length === n, 5000);
    const seen = new Map<unknown, string[]>();
    for (const f of c.frames) if (f.id !== undefined && f.id !== 'hello') seen.set(f.id, [...(seen.get(f.id) ?? []), f.kind]);
    assert.is(seen.size, n);
    for (const [id, kinds] of seen) assert.equal(kinds, ['status', 'result'], `frames for ${String(id)}`);
    const order = c.frames.filter((f) => f.kind === 'result').map((f) => f.id);
    const sent = [...delays.keys()];
    assert.not.equal(order, sent, 'answers interleave rather than follow the send order');
    const r = c.frames.find((f) => f.id === 's-0' && f.kind === 'result')!;
    assert.equal(r.data, { tag: '0', waited: delays.get('s-0') });
  } finally {
    c.close();
    await d.stop();
  }
});

test('cancel aborts the target: its terminal is CANCELLED and cancel answers {cancelled: true}', async () => {
  const d = await startDaemon({}, ops);
  const c = await WireClient.ready(d.port);
  try {
    c.send({ id: 10, op: 'delay', args: { ms: 5000 } });
    await c.waitFor((f) => f.id === 10 && f.kind === 'status');
    const cancel = await c.request({ id: 11, op: 'cancel', args: { target: 10 } });
    assert.equal(cancel.data, { cancelled: true });
    const terminal = await c.waitFor((f) => f.id === 10 && f.kind !== 'status');
    assert.is(terminal.kind, 'error');
    assert.is(terminal.error.code, 'CANCELLED');
    assert.ok(aborted.includes(10), 'the handler saw its signal abort');
    const late = await c.request({ id: 12, op: 'cancel', args: { target: 10 } });
    assert.equal(late.data, { cancelled: false }, 'a finished request cannot be cancelled');
    assert.is(c.frames.filter((f) => f.id === 10 && f.kind !== 'status').length, 1, 'exactly one terminal frame');
    const bad = await c.request({ id: 13, op: 'cancel', args: {} });
    assert.is(bad.error.code, 'BAD_REQUEST');
  } finally {
    c.close();
    await d.stop();
  }
});

test('a duplicate in-flight id gets CONFLICT and the first request still finishes', async () => {
  const d = await startDaemon({}, ops);
  const c = await WireClient.ready(d.port);
  try {
    c.send({ id: 'dup', op: 'delay', args: { ms: 60, tag: 'first' } });
    const conflict = await c.request({ id: 'dup', op: 'delay', args: { ms: 0, tag: 'second' } });
    assert.is(conflict.error.code, 'CONFLICT');
    assert.equal(conflict.error.details, { id: 'dup', duplicate: true }, 'the refusal says it answers a duplicate, not the first request');
    const first = await c.waitFor((f) => f.id === 'dup' && f.kind === 'result');
    assert.is(first.data.tag, 'first');
    const reuse = await c.request({ id: 'dup', op: 'delay', args: { ms: 0, tag: 'third' } });
    assert.is(reuse.data.tag, 'third', 'an id is free again once its request finished');
  } finally {
    c.close();
    await d.stop();
  }
});

test('errors: unknown op, bad args, EdgeechoError passes through, other throws become INTERNAL, undefined result is nil', async () => {
  const d = await startDaemon({}, ops);
  const c = await WireClient.ready(d.port);
  try {
    const unknown = await c.request({ id: 1, op: 'nope' });
    assert.is(unknown.error.code, 'UNKNOWN_OP');
    assert.match(unknown.error.message, 'delay');
    const extra = await c.request({ id: 2, op: 'delay', args: { ms: 1, colour: 'red' } });
    assert.is(extra.error.code, 'BAD_REQUEST');
    assert.match(extra.error.message, 'args.colour');
    const range = await c.request({ id: 3, op: 'delay', args: { ms: -1 } });
    assert.is(range.error.code, 'BAD_REQUEST');
    const nf = await c.request({ id: 4, op: 'fail', args: { kind: 'edgeecho' } });
    assert.equal(nf.error, { code: 'NOT_FOUND', message: 'no session s1', details: { session: 's1' } });
    const plain = await c.request({ id: 5, op: 'fail', args: { kind: 'plain' } });
    assert.equal(plain.error, { code: 'INTERNAL', message: 'boom' });
    const sync = await c.request({ id: 6, op: 'fail', args: { kind: 'sync' } });
    assert.is(sync.error.code, 'INTERNAL');
    const undef = await c.request({ id: 7, op: 'fail', args: { kind: 'undefined' } });
    assert.equal(undef, { id: 7, kind: 'result', data: null });
    assert.ok(c.isOpen);
  } finally {
    c.close();
    await d.stop();
  }
});

test('disconnect aborts ops in flight unless they are detached; a detached op runs to its end', async () => {
  let detachedDone = false;
  let detachedAborted = false;
  const detached: OpDefinition = {
    name: 'create',
    summary: 'test: detached',
    args: {},
    detached: true,
    handler: async (_args, ctx) => {
      await sleep(80);
      detachedAborted = ctx.signal.aborted;
      detachedDone = true;
      ctx.status({ step: 'after disconnect' });
      return { ok: true };
    },
  };
  const d = await startDaemon({}, [...ops, detached]);
  const c = await WireClient.ready(d.port);
  try {
    c.send({ id: 'a', op: 'delay', args: { ms: 5000 } });
    c.send({ id: 'b', op: 'create' });
    await c.waitFor((f) => f.id === 'a' && f.kind === 'status');
    c.close();
    const t0 = Date.now();
    while (!aborted.includes('a') && Date.now() - t0 < 2000) await sleep(5);
    assert.ok(aborted.includes('a'), 'the ordinary op was aborted on disconnect');
    while (!detachedDone && Date.now() - t0 < 2000) await sleep(5);
    assert.ok(detachedDone, 'the detached op finished');
    assert.not.ok(detachedAborted, 'the detached op was not aborted');
  } finally {
    c.close();
    await d.stop();
  }
});

test('ping is answered in request order with unique ids under pipelining', async () => {
  const d = await startDaemon({}, ops);
  const c = await WireClient.ready(d.port);
  try {
    const n = 2000;
    const frames: Buffer[] = [];
    const { encodeFrame } = await import('../../protocol/codec.js');
    for (let i = 0; i < n; i++) frames.push(encodeFrame({ id: i, op: 'ping' }));
    c.sendRaw(Buffer.concat(frames));
    await c.waitFor(() => c.frames.filter((f) => f.kind === 'result').length === n + 1, 5000);
    const ids = c.frames.filter((f) => f.kind === 'result' && f.id !== 'hello').map((f) => f.id);
    assert.equal(ids, [...Array(n).keys()]);
  } finally {
    c.close();
    await d.stop();
  }
});

test('a result that cannot be encoded still gets one terminal (INTERNAL), frees its id and does not crash the daemon', async () => {
  const unencodable: OpDefinition = {
    name: 'unencodable',
    summary: 'test: resolves with a value msgpack cannot carry',
    args: {},
    handler: async () => ({ huge: 2n ** 70n }),
  };
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown): void => void rejections.push(reason);
  process.on('unhandledRejection', onRejection);
  const d = await startDaemon({}, [unencodable]);
  const c = await WireClient.ready(d.port);
  try {
    const answer = await c.request({ id: 7, op: 'unencodable' }, 1000);
    assert.is(answer.kind, 'error');
    assert.is(answer.error.code, 'INTERNAL');
    assert.is(c.frames.filter((f) => f.id === 7).length, 1, 'exactly one terminal');
    assert.is((await c.request({ id: 8, op: 'ping' })).kind, 'result');
    await sleep(20);
    assert.equal(rejections, []);
  } finally {
    process.off('unhandledRejection', onRejection);
    c.close();
    await d.stop();
  }
});

test.run();

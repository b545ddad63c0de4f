import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { encodeFrame, FrameSplitter, FrameWriter, unpackValue } from '../../protocol/codec.js';

/** A sink that records writes and refuses more once `limit` bytes are unsent, like a socket. */
class FakeSink extends EventEmitter {
  writes: Buffer[] = [];
  writableLength = 0;
  destroyed = false;
  constructor(private readonly limit = Infinity) {
    super();
  }
  write(chunk: Buffer): boolean {
    this.writes.push(Buffer.from(chunk));
    this.writableLength += chunk.length;
    return this.writableLength < this.limit;
  }
  drainAll(): void {
    this.writableLength = 0;
    this.emit('drain');
  }
  frames(): unknown[] {
    const s = new FrameSplitter(64 * 1024 * 1024);
    return this.writes.flatMap((w) => s.push(w)).map((b) => unpackValue(b));
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('frames sent in one tick are coalesced into one write, in order', async () => {
  const sink = new FakeSink();
  const w = new FrameWriter(sink);
  for (let i = 0; i < 500; i++) w.send({ id: i });
  assert.is(sink.writes.length, 0, 'nothing written before the microtask');
  await tick();
  assert.is(sink.writes.length, 1);
  assert.equal(sink.frames(), Array.from({ length: 500 }, (_, i) => ({ id: i })));
});

test('coalesceBytes forces a write; order holds across slabs, raw frames and large frames', async () => {
  const sink = new FakeSink();
  const w = new FrameWriter(sink, { coalesceBytes: 1024 });
  const expected: unknown[] = [];
  for (let i = 0; i < 300; i++) {
    const v = i % 50 === 0 ? { big: 'z'.repeat(5000), i } : { i };
    expected.push(v);
    if (i % 7 === 0) w.sendRaw(encodeFrame(v));
    else w.send(v);
  }
  await tick();
  assert.ok(sink.writes.length > 1);
  assert.equal(sink.frames(), expected);
});

test('bytes already handed to the sink are never overwritten by later frames', async () => {
  const held: Buffer[] = [];
  const sink = new FakeSink();
  sink.write = function (chunk: Buffer): boolean {
    held.push(chunk); // keep the view, as a socket does until it is flushed
    return true;
  };
  const w = new FrameWriter(sink, { coalesceBytes: 256 });
  const expected: string[] = [];
  for (let round = 0; round < 50; round++) {
    const hex = encodeFrame({ round, pad: 'p'.repeat(round * 3) }).toString('hex');
    expected.push(hex);
    w.send({ round, pad: 'p'.repeat(round * 3) });
    await tick();
  }
  assert.is(Buffer.concat(held).toString('hex'), expected.join(''));
});

test('backpressure: send returns false once the sink refuses, drained() resolves on drain', async () => {
  const sink = new FakeSink(100);
  const w = new FrameWriter(sink, { coalesceBytes: 64 });
  assert.ok(w.writable);
  let accepted = true;
  for (let i = 0; i < 20 && accepted; i++) accepted = w.send({ fill: 'x'.repeat(40) });
  assert.not.ok(accepted);
  assert.not.ok(w.writable);
  assert.ok(w.bufferedBytes >= 100);
  let resolved = false;
  const waiting = w.drained().then(() => (resolved = true));
  await tick();
  assert.not.ok(resolved);
  sink.drainAll();
  await waiting;
  assert.ok(w.writable);
  assert.ok(w.send({ after: true }));
});

test('a destroyed sink gets nothing more', async () => {
  const sink = new FakeSink();
  const w = new FrameWriter(sink);
  w.send({ a: 1 });
  sink.destroyed = true;
  assert.not.ok(w.send({ b: 2 }));
  await tick();
  assert.is(sink.writes.length, 0);
});

test('undefined fields are left out of maps', async () => {
  const sink = new FakeSink();
  const w = new FrameWriter(sink);
  w.send({ id: 1, kind: 'result', data: { a: undefined, b: 2 } });
  await tick();
  assert.equal(sink.frames(), [{ id: 1, kind: 'result', data: { b: 2 } }]);
});

test.run();

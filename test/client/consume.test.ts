/**
 * consume(): an async iterator of a stream's data frames that checks continuity, count and CRC-32, against a
 * scripted stream server on loopback; every kind of loss ends the iteration with DATA_LOSS after the intact frames.
 */
import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame, FrameDecoder } from '../../protocol/codec.js';
import { DataFrameEncoder } from '../../protocol/data-frame.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { consume, parseLocation, type StreamFrame } from '../../src/client/index.js';

const DETAILS = { type: 'details', probe_id: 'p1', count: 0, payload_bytes: 16, rate: 0 };

interface Script {
  /** The bytes the server sends, then it half-closes (unless keepOpen). */
  bytes: Buffer;
  keepOpen?: boolean;
}

/** A stream server that sends one script to its first connection and records what the consumer sent back. */
async function scriptedServer(script: Script): Promise<{ port: number; received: Promise<unknown[]>; server: Server; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  let resolveReceived!: (v: unknown[]) => void;
  const received = new Promise<unknown[]>((r) => (resolveReceived = r));
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    const decoder = new FrameDecoder();
    const got: unknown[] = [];
    socket.on('data', (chunk) => got.push(...decoder.push(chunk).map((f) => (f.ok ? f.value : null))));
    socket.on('end', () => {
      resolveReceived(got);
      socket.end();
    });
    socket.on('close', () => resolveReceived(got));
    socket.on('error', () => undefined);
    if (script.keepOpen) socket.write(script.bytes);
    else socket.end(script.bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, received, server, sockets };
}

function stream(seqs: number[], options: { count?: number; checksum?: number; end?: boolean; corrupt?: number } = {}): Buffer {
  const enc = new DataFrameEncoder(16);
  const parts = [encodeFrame({ ...DETAILS, count: seqs.length })];
  const all = enc.batch(0, Math.max(...seqs, 0) + 1, 1_767_225_600_000);
  for (const seq of seqs) {
    const frame = Buffer.from(all.subarray(seq * enc.frameBytes, (seq + 1) * enc.frameBytes));
    if (seq === options.corrupt) frame[frame.length - 1]! ^= 0xff;
    parts.push(frame);
  }
  // the encoder's checksum covers every frame it made, in seq order: right for 0..n-1
  if (options.end !== false) parts.push(encodeFrame({ type: 'end', count: options.count ?? seqs.length, checksum: options.checksum ?? enc.checksum }));
  return Buffer.concat(parts);
}

async function collect(port: number, options = {}): Promise<{ frames: StreamFrame[]; error: EdgeechoError | null; consumer: ReturnType<typeof consume> }> {
  const consumer = consume({ host: '127.0.0.1', port }, options);
  const frames: StreamFrame[] = [];
  try {
    for await (const f of consumer) frames.push(f);
    return { frames, error: null, consumer };
  } catch (err) {
    assert.instance(err, EdgeechoError);
    return { frames, error: err as EdgeechoError, consumer };
  }
}

const closeAll = async (s: { server: Server; sockets: Set<Socket> }): Promise<void> => {
  for (const k of s.sockets) k.destroy();
  await new Promise((r) => s.server.close(r));
};

test('a whole stream: every frame in order, summary complete, ack sent then the consumer closes', async () => {
  const s = await scriptedServer({ bytes: stream([0, 1, 2, 3, 4]) });
  try {
    const { frames, error, consumer } = await collect(s.port);
    assert.is(error, null);
    assert.equal(frames.map((f) => f.seq), [0, 1, 2, 3, 4]);
    assert.is(frames[0]!.payload.length, 16);
    assert.is(frames[0]!.ts, 1_767_225_600_000);
    assert.equal(consumer.summary.details, { probe_id: 'p1', count: 5, payload_bytes: 16, rate: 0 });
    assert.ok(consumer.summary.complete);
    assert.is(consumer.summary.checksum_ok, true);
    assert.is(consumer.summary.payload_bytes, 80);
    assert.equal(await s.received, [{ type: 'ack', count: 5 }]);
  } finally {
    await closeAll(s);
  }
});

test('batches(): the same frames, several per step', async () => {
  const s = await scriptedServer({ bytes: stream([0, 1, 2, 3, 4]) });
  try {
    const consumer = consume({ host: '127.0.0.1', port: s.port });
    const seqs: number[][] = [];
    for await (const batch of consumer.batches()) seqs.push(batch.map((f) => f.seq));
    assert.equal(seqs.flat(), [0, 1, 2, 3, 4]);
    assert.ok(seqs.length < 5, 'frames of one read come as one batch');
    assert.ok(consumer.summary.complete);
    assert.throws(() => consumer.batches()[Symbol.asyncIterator](), /iterated once/);
  } finally {
    await closeAll(s);
  }
});

/** Six data frames of `size`-byte payloads, seq 2 and 3 in the shortest encoding with keys in another order (the general path in the middle of a run). */
function mixedLayouts(size: number): { bytes: Buffer; payloads: Buffer[] } {
  const enc = new DataFrameEncoder(size);
  const all = enc.batch(0, 6, 1_767_225_600_000);
  const parts = [encodeFrame({ ...DETAILS, count: 6 })];
  const payloads: Buffer[] = [];
  for (let seq = 0; seq < 6; seq++) {
    const frame = all.subarray(seq * enc.frameBytes, (seq + 1) * enc.frameBytes);
    payloads.push(frame.subarray(frame.length - size));
    parts.push(seq === 2 || seq === 3 ? encodeFrame({ payload: Buffer.from(payloads[seq]!), seq, ts: 1_767_225_600_000, type: 'data' }) : frame);
  }
  parts.push(encodeFrame({ type: 'end', count: 6, checksum: enc.checksum }));
  return { bytes: Buffer.concat(parts), payloads };
}

/** A server writing `bytes` in `step`-byte writes a tick apart: frame headers and bodies cut at every kind of place. */
async function trickle(bytes: Buffer, step: number): Promise<{ port: number; server: Server }> {
  const server = createServer({ allowHalfOpen: true }, async (socket) => {
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.setNoDelay(true);
    for (let at = 0; at < bytes.length; at += step) {
      socket.write(bytes.subarray(at, at + step));
      await new Promise((r) => setTimeout(r, 1));
    }
    socket.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server };
}

test('frames split across reads and data frames in another layout among the probe\'s: all checked, in order', async () => {
  const { bytes, payloads } = mixedLayouts(16);
  const { port, server } = await trickle(bytes, 7);
  try {
    const { frames, error, consumer } = await collect(port);
    assert.is(error, null);
    assert.equal(frames.map((f) => f.seq), [0, 1, 2, 3, 4, 5]);
    assert.equal(frames.map((f) => f.ts), Array(6).fill(1_767_225_600_000));
    assert.equal(Buffer.concat(frames.map((f) => f.payload)), Buffer.concat(payloads));
    assert.is(consumer.summary.checksum_ok, true);
    assert.is(consumer.summary.bytes, bytes.length);
  } finally {
    server.close();
  }
});

test('payloads(): the payload bytes alone, joined in seq order, checked like the frames', async () => {
  const s = await scriptedServer({ bytes: stream([0, 1, 2, 3, 4]) });
  try {
    const consumer = consume({ host: '127.0.0.1', port: s.port });
    const steps: Buffer[] = [];
    for await (const bytes of consumer.payloads()) steps.push(Buffer.from(bytes));
    const enc = new DataFrameEncoder(16);
    const all = enc.batch(0, 5, 1_767_225_600_000);
    const expected = Buffer.concat([0, 1, 2, 3, 4].map((i) => all.subarray((i + 1) * enc.frameBytes - 16, (i + 1) * enc.frameBytes)));
    assert.equal(Buffer.concat(steps), expected);
    assert.ok(steps.length < 5, 'payloads of one read come joined');
    assert.ok(consumer.summary.complete);
    assert.is(consumer.summary.frames, 5);
    assert.is(consumer.summary.payload_bytes, 80);
  } finally {
    await closeAll(s);
  }
});

/** payloads() over a whole stream: the bytes it handed out (copied as they came), or the error it ended with. */
async function collectPayloads(port: number, options = {}): Promise<{ bytes: Buffer; steps: number; error: EdgeechoError | null; consumer: ReturnType<typeof consume> }> {
  const consumer = consume({ host: '127.0.0.1', port }, options);
  const steps: Buffer[] = [];
  try {
    for await (const b of consumer.payloads()) steps.push(Buffer.from(b));
    return { bytes: Buffer.concat(steps), steps: steps.length, error: null, consumer };
  } catch (err) {
    assert.instance(err, EdgeechoError);
    return { bytes: Buffer.concat(steps), steps: steps.length, error: err as EdgeechoError, consumer };
  }
}

test('payloads(): 66 MB of 64-byte payloads with three of 5 MiB among them (the read ring reused many times over, frames longer than the ring): every byte, in order', async () => {
  const small = new DataFrameEncoder(64);
  const n = 200_000;
  const ts = 1_767_225_600_000;
  const large = [0, 1, 2].map((i) => Buffer.alloc(5 * 1024 * 1024, 0x41 + i));
  const before = small.batch(0, n / 2, ts);
  const after = small.batch(n / 2 + 3, n / 2, ts);
  const payloads: Buffer[] = [];
  const smallPayloads = (run: Buffer): void => {
    for (let at = 0; at < run.length; at += small.frameBytes) payloads.push(run.subarray(at + small.frameBytes - 64, at + small.frameBytes));
  };
  smallPayloads(before);
  payloads.push(...large);
  smallPayloads(after);
  const expected = Buffer.concat(payloads);
  const bytes = Buffer.concat([
    encodeFrame({ ...DETAILS, count: n + 3, payload_bytes: 64 }),
    before,
    ...large.map((payload, i) => encodeFrame({ type: 'data', seq: n / 2 + i, ts, payload })),
    after,
    encodeFrame({ type: 'end', count: n + 3, checksum: crc32(expected) }),
  ]);
  const s = await scriptedServer({ bytes });
  try {
    const { bytes: got, error, consumer } = await collectPayloads(s.port);
    assert.is(error, null);
    assert.is(got.length, expected.length);
    assert.ok(got.equals(expected), 'the payloads as sent');
    assert.is(consumer.summary.frames, n + 3);
    assert.is(consumer.summary.checksum_ok, true);
  } finally {
    await closeAll(s);
  }
});

test('payloads(): seq 0xffffffff then 0 is out of order as frame by frame (the walk counts in 32 bits, the reader does not)', async () => {
  const enc = new DataFrameEncoder(8);
  const last = enc.batch(0xffff_ffff, 1, 1_767_225_600_000);
  const wrapped = new DataFrameEncoder(8).batch(0, 3, 1_767_225_600_000);
  const bytes = Buffer.concat([encodeFrame({ ...DETAILS, count: 1 }), last, wrapped, encodeFrame({ type: 'end', count: 1, checksum: 0 })]);
  for (const read of [collect, collectPayloads]) {
    const s = await scriptedServer({ bytes });
    try {
      const { error, consumer } = await read(s.port, { allowLateJoin: true });
      assert.is(error?.code, 'DATA_LOSS');
      assert.match(error!.message, /out of order/);
      assert.is(consumer.summary.frames, 1);
    } finally {
      await closeAll(s);
    }
  }
});

test('payloads(): a bin value in the details frame stays as sent while 20 MB more are read through the reused memory', async () => {
  const enc = new DataFrameEncoder(64);
  const n = 180_000;
  const blob = Buffer.alloc(100, 7);
  const s = await scriptedServer({ bytes: Buffer.concat([encodeFrame({ ...DETAILS, count: n, blob }), enc.batch(0, n, 1_767_225_600_000), encodeFrame({ type: 'end', count: n, checksum: enc.checksum })]) });
  try {
    const { error, consumer } = await collectPayloads(s.port);
    assert.is(error, null);
    assert.equal(Buffer.from(consumer.summary.details!.blob as Uint8Array), blob);
  } finally {
    await closeAll(s);
  }
});

test('payloads(): frames cut at every place and in another layout among the probe\'s: the same bytes, checked', async () => {
  const { bytes, payloads } = mixedLayouts(300);
  const { port, server } = await trickle(bytes, 97);
  try {
    const got = await collectPayloads(port);
    assert.is(got.error, null);
    assert.equal(got.bytes, Buffer.concat(payloads));
    assert.is(got.consumer.summary.checksum_ok, true);
    assert.is(got.consumer.summary.bytes, bytes.length);
  } finally {
    server.close();
  }
});

test('payloads(): a gap ends the iteration with DATA_LOSS after the bytes before it', async () => {
  const s = await scriptedServer({ bytes: stream([0, 1, 3, 4]) });
  try {
    const consumer = consume({ host: '127.0.0.1', port: s.port });
    let bytes = 0;
    const error = await (async () => {
      try {
        for await (const b of consumer.payloads()) bytes += b.length;
      } catch (err) {
        return err as EdgeechoError;
      }
      return null;
    })();
    assert.is(error?.code, 'DATA_LOSS');
    assert.is(bytes, 2 * 16);
  } finally {
    await closeAll(s);
  }
});

test('a gap: the frames before it are yielded, then DATA_LOSS naming the missing seq', async () => {
  const s = await scriptedServer({ bytes: stream([0, 1, 3, 4]) });
  try {
    const { frames, error, consumer } = await collect(s.port);
    assert.equal(frames.map((f) => f.seq), [0, 1]);
    assert.is(error?.code, 'DATA_LOSS');
    assert.match(error!.message, /seq 3 after 1, expected 2: 1 frames missing/);
    assert.is(consumer.summary.lost, 1);
    assert.not.ok(consumer.summary.complete);
  } finally {
    await closeAll(s);
  }
});

test('a corrupted payload: every frame is yielded, then DATA_LOSS for the checksum', async () => {
  const s = await scriptedServer({ bytes: stream([0, 1, 2], { corrupt: 1 }) });
  try {
    const { frames, error, consumer } = await collect(s.port);
    assert.is(frames.length, 3);
    assert.is(error?.code, 'DATA_LOSS');
    assert.match(error!.message, /checksum mismatch/);
    assert.is(consumer.summary.checksum_ok, false);
  } finally {
    await closeAll(s);
  }
});

test('frames missing at the tail: the end frame\'s count gives them away', async () => {
  const s = await scriptedServer({ bytes: stream([0, 1], { count: 4 }) });
  try {
    const { error, consumer } = await collect(s.port);
    assert.is(error?.code, 'DATA_LOSS');
    assert.match(error!.message, /announces 4 frames/);
    assert.is(consumer.summary.lost, 2);
  } finally {
    await closeAll(s);
  }
});

test('closed before the end frame: DATA_LOSS, not a clean end', async () => {
  const s = await scriptedServer({ bytes: stream([0, 1, 2], { end: false }) });
  try {
    const { frames, error } = await collect(s.port);
    assert.is(frames.length, 3);
    assert.is(error?.code, 'DATA_LOSS');
    assert.match(error!.message, /closed after 3 data frames without an end frame/);
  } finally {
    await closeAll(s);
  }
});

test('a late join is DATA_LOSS by default; allowLateJoin checks continuity only', async () => {
  const enc = new DataFrameEncoder(16);
  const all = enc.batch(0, 4, 1);
  const bytes = Buffer.concat([encodeFrame(DETAILS), all.subarray(2 * enc.frameBytes), encodeFrame({ type: 'end', count: 4, checksum: enc.checksum })]);
  const strict = await scriptedServer({ bytes });
  const lenient = await scriptedServer({ bytes });
  try {
    const a = await collect(strict.port);
    assert.is(a.error?.code, 'DATA_LOSS');
    assert.match(a.error!.message, /first data frame has seq 2, expected 0/);
    const b = await collect(lenient.port, { allowLateJoin: true });
    assert.is(b.error, null);
    assert.equal(b.frames.map((f) => f.seq), [2, 3]);
    assert.is(b.consumer.summary.checksum_ok, null);
    assert.is(b.consumer.summary.complete, false);
  } finally {
    await closeAll(strict);
    await closeAll(lenient);
  }
});

test('break out of the loop: the connection closes without an ack', async () => {
  const s = await scriptedServer({ bytes: stream([0, 1, 2, 3], { end: false }), keepOpen: true });
  try {
    const consumer = consume(`127.0.0.1:${s.port}`);
    for await (const f of consumer) if (f.seq === 1) break;
    assert.equal(await s.received, []);
  } finally {
    await closeAll(s);
  }
});

test('nobody listening: CONNECTION_CLOSED naming the location', async () => {
  const { error } = await collect(1);
  assert.is(error?.code, 'CONNECTION_CLOSED');
  assert.match(error!.message, /cannot connect to the stream at 127\.0\.0\.1:1: ECONNREFUSED/);
});

const vectors = JSON.parse(readFileSync(new URL('../../protocol/vectors/data.json', import.meta.url), 'utf8')) as {
  streams: Array<{ name: string; hex: string; expect: { complete: boolean; error?: string } }>;
};
const readers = [['', collect], ['payloads(): ', collectPayloads]] as const;
for (const v of vectors.streams) {
  for (const [how, read] of readers) {
    test(`vector stream: ${how}${v.name} -> ${v.expect.error ?? 'complete'}`, async () => {
      const s = await scriptedServer({ bytes: Buffer.from(v.hex, 'hex') });
      try {
        const { error, consumer } = await read(s.port);
        assert.is(error?.code, v.expect.error);
        assert.is(consumer.summary.complete, v.expect.complete);
      } finally {
        await closeAll(s);
      }
    });
  }
}

test('parseLocation: host:port, [v6]:port, objects; bad ones are BAD_REQUEST', () => {
  assert.equal(parseLocation('10.1.2.3:7100'), { host: '10.1.2.3', port: 7100 });
  assert.equal(parseLocation('[::1]:7100'), { host: '::1', port: 7100 });
  assert.equal(parseLocation({ host: 'h', port: 1 }), { host: 'h', port: 1 });
  for (const bad of ['h', 'h:0', 'h:70000', ':80']) assert.throws(() => parseLocation(bad), (e: EdgeechoError) => e.code === 'BAD_REQUEST');
});

test.run();

/** The probe's fixed data-frame layout is standard msgpack, and its fast checksum is plain CRC-32. */
import { crc32 } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameDecoder, encodeFrame } from '../../protocol/codec.js';
import { DataFrameEncoder, PayloadChecksum, peekSeq, probePayloadStart, probeSeq, probeTs, readDataFrame, type DataFrame } from '../../protocol/data-frame.js';

for (const size of [0, 3, 64, 300, 70_000]) {
  test(`payload ${size} bytes: frames decode with the codec and the checksum is CRC-32 of the payloads`, () => {
    const enc = new DataFrameEncoder(size);
    const batch = Buffer.concat([enc.batch(0, 5, 1_700_000_000_123), enc.batch(5, 3, 1_700_000_000_456)]);
    const frames = new FrameDecoder(1 << 20).push(batch);
    assert.is(frames.length, 8);
    let crc = 0;
    frames.forEach((f, i) => {
      assert.ok(f.ok);
      const v = f.value as { type: string; seq: number; ts: unknown; payload: Uint8Array };
      assert.is(v.type, 'data');
      assert.is(v.seq, i);
      assert.is(Number(v.ts), i < 5 ? 1_700_000_000_123 : 1_700_000_000_456);
      assert.is(v.payload.length, size);
      crc = crc32(v.payload, crc);
    });
    assert.is(enc.checksum, crc);
  });
}

test('readDataFrame: the fast layout in place, and a data frame in another key order through the codec', () => {
  const enc = new DataFrameEncoder(16);
  const frame = enc.batch(41, 1, 1000);
  const out: DataFrame = { seq: 0, ts: 0, body: Buffer.alloc(0), payloadStart: 0, payloadEnd: 0 };
  assert.ok(readDataFrame(frame, 4, frame.length - 4, out));
  assert.is(out.seq, 41);
  assert.is(out.ts, 1000);
  assert.is(out.payloadEnd - out.payloadStart, 16);
  assert.is(peekSeq(frame, 4, frame.length - 4), 41);

  const other = encodeFrame({ seq: 7, payload: Buffer.from('abc'), type: 'data', ts: 5 });
  assert.is(peekSeq(other, 4, other.length - 4), -1, 'another layout is not peeked');
  assert.ok(readDataFrame(other, 4, other.length - 4, out));
  assert.is(out.seq, 7);
  assert.is(out.body.subarray(out.payloadStart, out.payloadEnd).toString(), 'abc');

  const end = encodeFrame({ type: 'end', count: 1, checksum: 2 });
  assert.not.ok(readDataFrame(end, 4, end.length - 4, out));
});

test('PayloadChecksum: CRC-32 of the bytes added in order, gathered or in place; with keep, the same bytes back', () => {
  const source = Buffer.alloc(300_000);
  for (let i = 0; i < source.length; i++) source[i] = (i * 2654435761) >>> 24;
  const view = new DataView(source.buffer, source.byteOffset, source.length);
  // odd sizes and offsets, small ones gathered, from 512 bytes summed in place, across several scratch fills
  const sizes = [0, 1, 3, 64, 511, 512, 700, 5, 4096, 63, 1, 70_000, 13];
  for (const keep of [false, true]) {
    const sum = new PayloadChecksum(keep, keep ? 1024 : 100);
    const parts: Buffer[] = [];
    const kept: Buffer[] = [];
    let at = 7;
    for (let round = 0; round < 3; round++) {
      for (const n of sizes) {
        sum.add(view, at, at + n);
        parts.push(source.subarray(at, at + n));
        at += n + 3;
      }
      kept.push(...sum.take().map((b) => Buffer.from(b)));
      assert.is(sum.value, crc32(Buffer.concat(parts)));
    }
    if (keep) assert.equal(Buffer.concat(kept), Buffer.concat(parts));
    else assert.is(kept.length, 0);
  }
});

test('probePayloadStart: the probe layout with any bin width; anything else is -1', () => {
  for (const size of [16, 300, 70_000]) {
    const enc = new DataFrameEncoder(size);
    const frame = enc.batch(41, 1, 1_767_225_600_000);
    const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
    assert.is(probePayloadStart(view, 4, frame.length - 4), frame.length - size);
    assert.is(probeSeq(view, 4), 41);
    assert.is(probeTs(view, 4), 1_767_225_600_000);
    assert.is(probePayloadStart(view, 4, frame.length - 5), -1, 'a length that disagrees with the bin header');
  }
  for (const other of [encodeFrame({ seq: 7, payload: Buffer.from('abc'), type: 'data', ts: 5 }), encodeFrame({ type: 'end', count: 1, checksum: 2 })]) {
    assert.is(probePayloadStart(new DataView(other.buffer, other.byteOffset, other.length), 4, other.length - 4), -1);
  }
});

test.run();

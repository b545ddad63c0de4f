/**
 * FrameWalk (the payloads() reader's WebAssembly walk) takes exactly the frames probePayloadStart + probeSeq take in
 * JS and stops at the first other one; ReadRing never writes over bytes a frame scanner still holds.
 */
import { crc32 } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame, FRAME_HEADER_BYTES } from '../../protocol/codec.js';
import { DataFrameEncoder } from '../../protocol/data-frame.js';
import { ReadRing } from '../../protocol/read-slab.js';
import { FrameWalk, WALK_GATHER_BYTES, WALK_READ_BYTES } from '../../protocol/wasm-frame-walk.js';

const TS = 1_767_225_600_000;

/** Copies bytes into the walk's read memory at `at` and walks them from seq `expected`. */
function walkOver(walk: FrameWalk, bytes: Buffer, expected = 0, at = 0): { stop: number; region: Buffer } {
  const region = walk.readRegion();
  bytes.copy(region, at);
  return { stop: walk.walk(region, at, at + bytes.length, expected) - at, region };
}

function payloadsOf(enc: DataFrameEncoder, frames: Buffer, n: number): Buffer {
  return Buffer.concat(Array.from({ length: n }, (_, i) => frames.subarray((i + 1) * enc.frameBytes - enc.payloadBytes, (i + 1) * enc.frameBytes)));
}

for (const size of [0, 1, 64, 255, 256, 4000, 65535]) {
  test(`a run of probe frames with ${size}-byte payloads: all taken, payloads gathered in order`, () => {
    const enc = new DataFrameEncoder(size);
    const n = Math.max(1, Math.min(50, Math.floor(WALK_GATHER_BYTES / Math.max(size, 1))));
    const frames = enc.batch(0, n, TS);
    const walk = new FrameWalk();
    const { stop } = walkOver(walk, frames, 0, 13);
    assert.is(stop, frames.length);
    assert.is(walk.expected, n);
    assert.equal(Buffer.from(walk.gathered), payloadsOf(enc, frames, n));
    assert.is(crc32(walk.gathered), enc.checksum);
  });
}

test('stops at a gap, at another encoding, at a 32-bit bin, at a details frame: where that frame starts', () => {
  const enc = new DataFrameEncoder(16);
  const frames = enc.batch(0, 4, TS);
  const size = enc.frameBytes;
  const walk = new FrameWalk();
  // seq 2 missing
  let r = walkOver(walk, Buffer.concat([frames.subarray(0, 2 * size), frames.subarray(3 * size)]));
  assert.is(r.stop, 2 * size);
  assert.is(walk.expected, 2);
  assert.is(walk.gathered.length, 32);
  // the same map in the shortest encoding
  const other = encodeFrame({ type: 'data', seq: 1, ts: TS, payload: Buffer.alloc(16, 7) });
  r = walkOver(walk, Buffer.concat([frames.subarray(0, size), other, frames.subarray(2 * size)]));
  assert.is(r.stop, size);
  assert.is(walk.expected, 1);
  // a payload of 70,000 bytes (bin32)
  const big = new DataFrameEncoder(70_000);
  r = walkOver(walk, big.batch(0, 1, TS));
  assert.is(r.stop, 0);
  assert.is(walk.gathered.length, 0);
  assert.is(walkOver(walk, encodeFrame({ type: 'details', probe_id: 'p' })).stop, 0);
  // from seq 3 on only frame 3 follows
  assert.is(walkOver(walk, frames, 3).stop, 0);
  assert.is(walkOver(walk, frames.subarray(3 * size), 3).stop, size);
});

test('a frame cut short or a length past the run: the walk stops before it', () => {
  const enc = new DataFrameEncoder(16);
  const frames = enc.batch(0, 3, TS);
  const walk = new FrameWalk();
  assert.is(walkOver(walk, frames.subarray(0, frames.length - 1)).stop, 2 * enc.frameBytes);
  const lying = Buffer.from(frames);
  lying.writeUInt32BE(enc.frameBytes, enc.frameBytes); // frame 1 claims 4 bytes more than its bin says
  assert.is(walkOver(walk, lying).stop, enc.frameBytes);
});

test('gather area full: the walk stops at the frame that does not fit, the next walk goes on', () => {
  const enc = new DataFrameEncoder(60_000);
  const frames = enc.batch(0, 6, TS);
  const walk = new FrameWalk();
  const region = walk.readRegion();
  frames.copy(region);
  const first = walk.walk(region, 0, frames.length, 0);
  assert.is(walk.expected, 4);
  assert.is(first, 4 * enc.frameBytes);
  const gathered = Buffer.from(walk.gathered);
  assert.is(walk.walk(region, first, frames.length, 4), frames.length);
  assert.equal(Buffer.concat([gathered, walk.gathered]), payloadsOf(enc, frames, 6));
});

test('seqs past 2^31 are compared unsigned', () => {
  const enc = new DataFrameEncoder(8);
  const frames = enc.batch(0x8000_0000, 3, TS);
  const walk = new FrameWalk();
  assert.is(walkOver(walk, frames, 0x8000_0000).stop, frames.length);
  assert.is(walk.expected, 0x8000_0003);
});

test('ReadRing: reads follow each other, wrap once the held bytes are clear of the first read, else go to fresh memory', () => {
  const walk = new FrameWalk();
  const region = walk.readRegion();
  assert.is(region.length, WALK_READ_BYTES);
  const readMax = WALK_READ_BYTES / 4;
  const ring = new ReadRing(region, readMax);
  const first = ring.next(0);
  assert.ok(walk.owns(first));
  assert.is(first.byteOffset, region.byteOffset);
  ring.taken(first, 1000);
  assert.is(ring.next(0).byteOffset, region.byteOffset + 1000);
  // fill up to less than a quarter read from the end
  for (let got = 1000; region.length - got >= readMax / 4; ) {
    const next = ring.next(0);
    const n = Math.min(next.length, readMax);
    ring.taken(next, n);
    got += n;
  }
  // a frame longer than a read is being gathered: fresh memory, the ring is left as it is
  const fresh = ring.next(readMax + 1);
  assert.not.ok(walk.owns(fresh));
  ring.taken(fresh, 10);
  const wrapped = ring.next(FRAME_HEADER_BYTES + 100);
  assert.ok(walk.owns(wrapped));
  assert.is(wrapped.byteOffset, region.byteOffset);
  assert.throws(() => new ReadRing(Buffer.alloc(1024), 512), /needs 4 reads of room/);
});

test.run();

/**
 * FrameWalk (the payloads() reader's WebAssembly walk) takes exactly the frames probePayloadStart + probeSeq take in
 * JS and stops at the first other one; ReadRing never writes over bytes a frame scanner still holds.
 */
import { crc32 } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame, FRAME_HEADER_BYTES } from '../../protocol/codec.js';
import { DataFrameEncoder } from '../../protocol/data-frame.js';
import { FrameScanner } from '../../protocol/frame-scanner.js';
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


test('ReadRing: reads follow each other and go round; fresh memory while a held frame leaves less than a quarter read', () => {
  const walk = new FrameWalk();
  const region = walk.readRegion();
  assert.is(region.length, WALK_READ_BYTES);
  const readMax = WALK_READ_BYTES / 4;
  const ring = new ReadRing(region, readMax);
  const first = ring.next([]);
  assert.ok(walk.owns(first));
  assert.is(first.byteOffset, region.byteOffset);
  ring.taken(first, 1000);
  assert.is(ring.next([]).byteOffset, region.byteOffset + 1000);
  // fill up to less than a quarter read from the end
  let got = 1000;
  while (region.length - got >= readMax / 4) {
    const next = ring.next([]);
    ring.taken(next, next.length);
    got += next.length;
  }
  // a frame begun 100 bytes from the end is held: the next read goes round, up to it at most
  const held = [region.subarray(region.length - 100)];
  const wrapped = ring.next(held);
  assert.is(wrapped.byteOffset, region.byteOffset);
  ring.taken(wrapped, readMax);
  // a frame held from 1.5 reads into the ring, left from the round before: reads stop short of it, then go to fresh memory
  const farHeld = [region.subarray(readMax + readMax / 2), region.subarray(0, readMax)];
  const short = ring.next(farHeld);
  assert.is(short.byteOffset, region.byteOffset + readMax);
  assert.is(short.length, readMax / 2);
  ring.taken(short, short.length);
  assert.not.ok(walk.owns(ring.next(farHeld)));
  // once that frame is whole (nothing held) the ring goes on where it was
  assert.is(ring.next([]).byteOffset, region.byteOffset + readMax + readMax / 2);
  assert.throws(() => new ReadRing(Buffer.alloc(1024), 512), /needs 4 reads of room/);
});

/** Feeds `stream` through a ReadRing and a FrameScanner as a socket would (reads of readSize() bytes); the frames seen. */
function throughRing(stream: Buffer, readSize: () => number): Buffer[] {
  const walk = new FrameWalk();
  const ring = new ReadRing(walk.readRegion());
  const scanner = new FrameScanner(16 * 1024 * 1024 + 1024);
  const frames: Buffer[] = [];
  const onRun = (buf: Buffer, start: number, end: number): void => {
    for (let pos = start; pos < end; ) {
      const length = buf.readUInt32BE(pos);
      frames.push(Buffer.from(buf.subarray(pos, pos + FRAME_HEADER_BYTES + length)));
      pos += FRAME_HEADER_BYTES + length;
    }
  };
  for (let at = 0; at < stream.length; ) {
    const region = ring.next(scanner.heldPieces);
    const n = Math.min(region.length, readSize(), stream.length - at);
    stream.copy(region, 0, at, at + n);
    at += n;
    scanner.pushRuns(ring.taken(region, n), onRun);
  }
  return frames;
}

/** small frames, then one of `large` bytes of payload, then small ones again */
function withLargeFrame(before: number, large: number): Buffer[] {
  const frames: Buffer[] = [];
  for (let seq = 0; seq < before; seq++) frames.push(encodeFrame({ type: 'data', seq, ts: TS, payload: Buffer.alloc(64, seq) }));
  frames.push(encodeFrame({ type: 'data', seq: before, ts: TS, payload: Buffer.alloc(large, 0x41) }));
  for (let seq = before + 1; seq < before + 200; seq++) frames.push(encodeFrame({ type: 'data', seq, ts: TS, payload: Buffer.alloc(64, seq) }));
  return frames;
}

test('ReadRing + FrameScanner: frames of 2.5 to 6 MiB held across a round of the ring come out whole, whatever the read sizes', () => {
  // full 1 MiB reads: the large frame starts at every kind of place before the ring goes round
  for (let before = 30_000; before <= 34_000; before += 500) {
    const frames = withLargeFrame(before, 4.5 * 1024 * 1024);
    const seen = throughRing(Buffer.concat(frames), () => 1024 * 1024);
    assert.is(seen.length, frames.length);
    assert.ok(Buffer.concat(seen).equals(Buffer.concat(frames)), `${before} small frames first`);
  }
  let x = 12345;
  const random = (): number => ((x = (x * 1103515245 + 12345) & 0x7fffffff), x);
  for (let trial = 0; trial < 8; trial++) {
    const frames = withLargeFrame(20_000 + (random() % 20_000), 2.5 * 1024 * 1024 + (random() % (3.5 * 1024 * 1024)));
    const seen = throughRing(Buffer.concat(frames), () => 1 + (random() % (1024 * 1024)));
    assert.ok(Buffer.concat(seen).equals(Buffer.concat(frames)), `trial ${trial}`);
  }
});

test('a 42-byte body ending in 0xc5 at the very end of the read memory: not taken, no read past it', () => {
  const enc = new DataFrameEncoder(0);
  const frame = Buffer.from(enc.batch(0, 1, TS));
  frame[FRAME_HEADER_BYTES + 40] = 0xc5;
  const walk = new FrameWalk();
  const region = walk.readRegion();
  const at = region.length - frame.length;
  frame.copy(region, at);
  assert.is(walk.walk(region, at, region.length, 0), at);
});

test('seqs are compared unsigned; seq 0xffffffff is left to the JS reader (the walk counts in 32 bits)', () => {
  const enc = new DataFrameEncoder(8);
  const walk = new FrameWalk();
  const past31 = enc.batch(0x8000_0000, 3, TS);
  assert.is(walkOver(walk, past31, 0x8000_0000).stop, past31.length);
  assert.is(walk.expected, 0x8000_0003);
  const last = enc.batch(0xffff_fffe, 2, TS);
  assert.is(walkOver(walk, last, 0xffff_fffe).stop, enc.frameBytes);
  assert.is(walk.expected, 0xffff_ffff);
});
test.run();

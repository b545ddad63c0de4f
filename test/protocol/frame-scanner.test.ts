/**
 * FrameScanner finds frame boundaries in place: push calls back per frame, pushRuns per run of whole frames, and
 * both hand on the same frames in order whatever the chunk boundaries, a frame split across reads joined once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame } from '../../protocol/codec.js';
import { FrameScanError, FrameScanner } from '../../protocol/frame-scanner.js';
import { chunked, prng } from '../support/prng.js';

const frames = Array.from({ length: 200 }, (_, i) => encodeFrame({ i, pad: 'x'.repeat((i * 37) % 300) }));
const stream = Buffer.concat(frames);

/** The frames (with their length prefix) in the runs pushRuns hands on. */
function framesOfRun(buf: Buffer, start: number, end: number, into: Buffer[]): void {
  for (let pos = start; pos < end; ) {
    const length = buf.readUInt32BE(pos);
    into.push(Buffer.from(buf.subarray(pos, pos + 4 + length)));
    pos += 4 + length;
  }
}

for (const maxChunk of [1, 5, 64, 700, 100_000]) {
  test(`push and pushRuns give every frame in order over chunks of up to ${maxChunk} bytes`, () => {
    const chunks = chunked(stream, prng(maxChunk), maxChunk);
    const byFrame: Buffer[] = [];
    const a = new FrameScanner(1 << 20);
    for (const c of chunks) a.push(c, (buf, start, length) => (byFrame.push(Buffer.from(buf.subarray(start - 4, start + length))), true));
    const byRun: Buffer[] = [];
    const b = new FrameScanner(1 << 20);
    for (const c of chunks) b.pushRuns(c, (buf, start, end) => framesOfRun(buf, start, end, byRun));
    assert.equal(byFrame, frames);
    assert.equal(byRun, frames);
    assert.is(a.pendingBytes, 0);
    assert.is(b.pendingBytes, 0);
  });
}

test('pushRuns: a zero or oversized length throws once the whole frames before it were handed on', () => {
  for (const bad of [0, 2000]) {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(bad);
    const scanner = new FrameScanner(1000);
    const got: Buffer[] = [];
    assert.throws(
      () => scanner.pushRuns(Buffer.concat([frames[0]!, frames[1]!, header, Buffer.alloc(10)]), (buf, start, end) => framesOfRun(buf, start, end, got)),
      (err: Error) => err instanceof FrameScanError && new RegExp(`frame length ${bad} at chunk offset ${frames[0]!.length + frames[1]!.length}`).test(err.message),
    );
    assert.equal(got, [frames[0], frames[1]]);
  }
});

test.run();

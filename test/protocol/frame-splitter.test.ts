import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame, FrameDecoder, FrameSplitter, packValue } from '../../protocol/codec.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { chunked, prng } from '../support/prng.js';

function randomValue(rnd: () => number, depth = 0): unknown {
  const pick = Math.floor(rnd() * (depth > 2 ? 5 : 7));
  switch (pick) {
    case 0:
      return Math.floor(rnd() * 2 ** 40) - 2 ** 39;
    case 1:
      return 'é'.repeat(Math.floor(rnd() * 3)) + 'x'.repeat(Math.floor(rnd() * (rnd() < 0.05 ? 70_000 : 40)));
    case 2:
      return rnd() < 0.5;
    case 3:
      return null;
    case 4:
      return rnd() * 1e6;
    case 5:
      return Array.from({ length: Math.floor(rnd() * 5) }, () => randomValue(rnd, depth + 1));
    default: {
      const m: Record<string, unknown> = {};
      for (let i = Math.floor(rnd() * 5); i > 0; i--) m[`k${Math.floor(rnd() * 100)}`] = randomValue(rnd, depth + 1);
      return m;
    }
  }
}

for (const seed of [1, 7, 2024]) {
  test(`fuzzed chunk boundaries over 3000 frames give back every value in order (seed ${seed})`, () => {
    const rnd = prng(seed);
    const values = Array.from({ length: 3000 }, (_, i) => ({ id: i, op: 'x', args: { v: randomValue(rnd) } }));
    const stream = Buffer.concat(values.map((v) => encodeFrame(v)));
    const decoder = new FrameDecoder(256 * 1024);
    const got: unknown[] = [];
    // mixes single bytes, header-splitting cuts and large coalesced chunks
    for (const maxChunk of [1 + Math.floor(rnd() * 7), 64, 4096, 200_000]) {
      got.length = 0;
      for (const chunk of chunked(stream, rnd, maxChunk)) {
        for (const f of decoder.push(chunk)) {
          assert.ok(f.ok, `seed ${seed} maxChunk ${maxChunk}`);
          got.push(f.ok && f.value);
        }
      }
      assert.is(decoder.pendingBytes, 0);
      assert.equal(got, values, `seed ${seed} maxChunk ${maxChunk}`);
    }
  });
}

test('every cut point of a three-frame stream, including inside the header', () => {
  const frames = [encodeFrame({ a: 1 }), encodeFrame('x'), encodeFrame([1, 2, 3])];
  const all = Buffer.concat(frames);
  for (let cut = 0; cut <= all.length; cut++) {
    for (let cut2 = cut; cut2 <= all.length; cut2 += 3) {
      const s = new FrameSplitter(100);
      const out = [...s.push(all.subarray(0, cut)), ...s.push(all.subarray(cut, cut2)), ...s.push(all.subarray(cut2))];
      assert.equal(out.map((b) => b.toString('hex')), frames.map((f) => f.subarray(4).toString('hex')), `cuts ${cut}/${cut2}`);
    }
  }
});

test('a bad body is reported and the next frame still decodes (the length keeps the stream in sync)', () => {
  const bad = Buffer.from([0, 0, 0, 3, 0x82, 0xa1, 0x61]);
  const out = new FrameDecoder().push(Buffer.concat([bad, encodeFrame({ ok: 1 })]));
  assert.is(out.length, 2);
  assert.not.ok(out[0]!.ok);
  assert.is(!out[0]!.ok && out[0]!.error.code, 'BAD_FRAME');
  assert.equal(out[1]!.ok && out[1]!.value, { ok: 1 });
});

test('a truncated frame stays pending, bounded by what arrived', () => {
  const frame = encodeFrame({ text: 'y'.repeat(1000) });
  const s = new FrameSplitter();
  assert.equal(s.push(frame.subarray(0, 500)), []);
  assert.is(s.pendingBytes, 500);
  assert.is(s.push(frame.subarray(500)).length, 1);
  assert.is(s.pendingBytes, 0);
});

test('zero and oversized lengths are fatal; forEachFrame delivers the frames before them first', () => {
  const ok = encodeFrame({ before: true });
  for (const [header, code] of [
    [[0, 0, 0, 0], 'BAD_FRAME'],
    [[0, 0, 4, 1], 'FRAME_TOO_LARGE'],
  ] as const) {
    const s = new FrameSplitter(1024);
    const seen: Buffer[] = [];
    try {
      s.forEachFrame(Buffer.concat([ok, Buffer.from(header)]), (b) => seen.push(b));
      assert.unreachable('accepted');
    } catch (err) {
      assert.is((err as EdgeechoError).code, code);
    }
    assert.is(seen.length, 1);
    assert.is(s.error?.code, code);
    assert.is(s.pendingBytes, 0, 'nothing held after failing');
  }
});

test('max_frame boundary: exactly max is accepted, max+1 refused before any body byte', () => {
  const s = new FrameSplitter(8);
  const body = Buffer.alloc(8, 0xc0);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(8);
  assert.is(s.push(Buffer.concat([header, body])).length, 1);
  header.writeUInt32BE(9);
  assert.throws(() => s.push(header), (e: EdgeechoError) => e.code === 'FRAME_TOO_LARGE');
});

test('memory stays bounded: a 4 GiB announcement allocates nothing, a drip-fed large frame is joined once', () => {
  const before = process.memoryUsage().arrayBuffers;
  const s = new FrameSplitter(0xffff_ffff);
  s.push(Buffer.from([0xff, 0xff, 0xff, 0xfe, 1, 2, 3]));
  assert.is(s.pendingBytes, 7);
  assert.ok(process.memoryUsage().arrayBuffers - before < 16 * 1024 * 1024, 'the announced size was not allocated');
  const big = packValue({ blob: Buffer.alloc(2 * 1024 * 1024, 7) });
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0]), big]);
  frame.writeUInt32BE(big.length);
  const s2 = new FrameSplitter(4 * 1024 * 1024);
  let out: Buffer[] = [];
  for (let at = 0; at < frame.length; at += 1000) out = out.concat(s2.push(frame.subarray(at, at + 1000)));
  assert.is(out.length, 1);
  assert.is(out[0]!.length, big.length);
});

test('a non-Buffer Uint8Array chunk is accepted', () => {
  const frame = encodeFrame({ u8: true });
  const u8 = new Uint8Array(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length));
  assert.is(new FrameDecoder().push(u8).length, 1);
});

test.run();

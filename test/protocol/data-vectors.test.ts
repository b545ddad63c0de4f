/**
 * protocol/vectors/data.json both ways: each data-plane frame decodes to its JSON and encodes to its bytes (the
 * probe's fixed layout through DataFrameEncoder, other frames through the codec), the checksum examples are zlib's
 * CRC-32, and each example stream reads as its expectation with nothing but DATA.md's rules.
 */
import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame, FrameDecoder, FrameSplitter } from '../../protocol/codec.js';
import { crc32Update, DataFrameEncoder, readDataFrame, type DataFrame } from '../../protocol/data-frame.js';
import { parseJsonLine, toJsonValue } from '../../src/cli/frame-json.js';

interface FrameVector {
  name: string;
  layout?: 'probe';
  json: Record<string, unknown>;
  hex: string;
}
interface StreamVector {
  name: string;
  hex: string;
  expect: { frames: number; lost: number; out_of_order: number; checksum_ok: boolean | null; complete: boolean; error?: string };
}
const vectors = JSON.parse(readFileSync(new URL('../../protocol/vectors/data.json', import.meta.url), 'utf8')) as {
  frames: FrameVector[];
  checksums: Array<{ name: string; payloads: string[]; crc32: number }>;
  streams: StreamVector[];
};
/** The JSON form ({"$bin": base64} for bytes) both ways, as the CLI writes and reads it. */
const value = (json: unknown): Record<string, unknown> => parseJsonLine(JSON.stringify(json)) as Record<string, unknown>;

test('vectors cover details, data (both layouts), end and ack frames, checksums and streams', () => {
  const types = vectors.frames.map((f) => f.json.type);
  for (const t of ['details', 'data', 'end', 'ack']) assert.ok(types.includes(t), t);
  assert.ok(vectors.frames.some((f) => f.layout === 'probe') && vectors.frames.some((f) => f.json.type === 'data' && !f.layout));
  assert.ok(vectors.checksums.length >= 3 && vectors.streams.length >= 4);
});

for (const v of vectors.frames) {
  test(`decode: ${v.name}`, () => {
    const out = new FrameDecoder(1 << 20).push(Buffer.from(v.hex, 'hex'));
    assert.is(out.length, 1);
    assert.ok(out[0]!.ok);
    assert.equal(toJsonValue(out[0]!.ok && out[0]!.value), v.json);
    if (v.json.type === 'data') {
      const body = Buffer.from(v.hex, 'hex').subarray(4);
      const f: DataFrame = { seq: -1, ts: 0, body, payloadStart: 0, payloadEnd: 0 };
      assert.ok(readDataFrame(body, 0, body.length, f));
      assert.equal([f.seq, f.ts, f.body.subarray(f.payloadStart, f.payloadEnd).toString('base64')], [v.json.seq, v.json.ts, (v.json.payload as { $bin: string }).$bin]);
    }
  });
  test(`encode: ${v.name}`, () => {
    if (v.layout === 'probe') {
      const seq = v.json.seq as number;
      const payload = value(v.json).payload as Buffer;
      const enc = new DataFrameEncoder(payload.length);
      const batch = enc.batch(0, seq + 1, v.json.ts as number);
      assert.is(batch.subarray(seq * enc.frameBytes).toString('hex'), v.hex);
    } else {
      assert.is(encodeFrame(value(v.json)).toString('hex'), v.hex);
    }
  });
}

for (const v of vectors.checksums) {
  test(`checksum: ${v.name}`, () => {
    let crc = 0;
    for (const p of v.payloads) {
      const b = Buffer.from(p, 'hex');
      crc = crc32Update(crc, b, 0, b.length);
    }
    assert.is(crc, v.crc32);
    assert.is(crc32(Buffer.concat(v.payloads.map((p) => Buffer.from(p, 'hex')))), v.crc32, 'as zlib crc32 of the concatenation');
  });
}

/** A reference reader written from DATA.md alone: continuity from seq 0, count and CRC-32 from the end frame. */
function readStream(bytes: Buffer): StreamVector['expect'] {
  let frames = 0;
  let lost = 0;
  let outOfOrder = 0;
  let expected = 0;
  let first: number | null = null;
  let crc = 0;
  let end: { count: number; checksum: number } | null = null;
  new FrameSplitter(1 << 20).forEachFrame(bytes, (body) => {
    const f: DataFrame = { seq: 0, ts: 0, body, payloadStart: 0, payloadEnd: 0 };
    if (readDataFrame(body, 0, body.length, f)) {
      first ??= f.seq;
      if (f.seq > expected) lost += f.seq - expected;
      if (f.seq < expected) outOfOrder++;
      else expected = f.seq + 1;
      frames++;
      crc = crc32Update(crc, f.body, f.payloadStart, f.payloadEnd);
    }
  });
  for (const f of new FrameDecoder(1 << 20).push(bytes)) {
    const v = f.ok ? (f.value as Record<string, unknown>) : null;
    if (v?.type === 'end') end = { count: v.count as number, checksum: v.checksum as number };
  }
  const late = (first ?? 0) > 0;
  if (end && end.count > expected) lost += end.count - expected;
  const checksumOk = end && !late ? end.checksum === crc : null;
  return { frames, lost, out_of_order: outOfOrder, checksum_ok: checksumOk, complete: end !== null && !late && lost === 0 && outOfOrder === 0 && checksumOk === true };
}

for (const v of vectors.streams) {
  test(`stream: ${v.name}`, () => {
    const { error: _error, ...expect } = v.expect;
    assert.equal(readStream(Buffer.from(v.hex, 'hex')), expect);
  });
}

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { encodeFrame, FrameDecoder, FrameSplitter } from '../../protocol/codec.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { parseRequest } from '../../protocol/messages.js';

const dir = new URL('../../protocol/vectors/', import.meta.url);
const frames = JSON.parse(readFileSync(new URL('frames.json', dir), 'utf8')) as Array<{ name: string; json: unknown; hex: string }>;
const requests = JSON.parse(readFileSync(new URL('requests.json', dir), 'utf8')) as Array<{ name: string; hex: string; ok?: boolean; error?: string; field?: string; id: number | string | null }>;
const invalid = JSON.parse(readFileSync(new URL('invalid.json', dir), 'utf8')) as Array<{ name: string; hex: string; error: string; fatal: boolean }>;

test('there are vectors for every frame kind', () => {
  assert.ok(frames.length >= 10);
  for (const kind of ['result', 'error', 'status', 'event', 'hello']) assert.ok(frames.some((f) => (f.json as { kind?: string }).kind === kind), kind);
});

for (const v of frames) {
  test(`encode: ${v.name}`, () => {
    assert.is(encodeFrame(v.json).toString('hex'), v.hex);
  });
  test(`decode: ${v.name}`, () => {
    const out = new FrameDecoder().push(Buffer.from(v.hex, 'hex'));
    assert.is(out.length, 1);
    assert.ok(out[0]!.ok);
    assert.equal(out[0]!.ok && out[0]!.value, v.json);
  });
}

for (const v of invalid) {
  test(`invalid: ${v.name} -> ${v.error}${v.fatal ? ' (fatal)' : ''}`, () => {
    const bytes = Buffer.from(v.hex, 'hex');
    if (v.fatal) {
      const s = new FrameSplitter();
      try {
        s.push(bytes);
        assert.unreachable('accepted');
      } catch (err) {
        assert.instance(err, EdgeechoError);
        assert.is((err as EdgeechoError).code, v.error);
      }
      assert.throws(() => s.push(Buffer.from([0])), 'a failed splitter refuses further input');
    } else {
      const out = new FrameDecoder().push(bytes);
      assert.is(out.length, 1);
      assert.not.ok(out[0]!.ok);
      assert.is(!out[0]!.ok && out[0]!.error.code, v.error);
    }
  });
}

for (const v of requests) {
  test(`request: ${v.name} -> ${v.ok ? 'accepted' : `${v.error} (field ${v.field})`}`, () => {
    const out = new FrameDecoder().push(Buffer.from(v.hex, 'hex'));
    assert.ok(out[0]!.ok, 'the body is valid msgpack');
    const parsed = parseRequest(out[0]!.ok && out[0]!.value);
    if (v.ok) {
      assert.ok(parsed.ok);
      assert.is(parsed.ok && parsed.request.id, v.id);
    } else {
      assert.not.ok(parsed.ok);
      assert.is(!parsed.ok && parsed.error.code, v.error);
      assert.is(!parsed.ok && parsed.error.details?.field, v.field);
      assert.is(!parsed.ok && parsed.id, v.id);
    }
  });
}

test.run();

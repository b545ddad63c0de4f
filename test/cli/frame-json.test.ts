import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { frameLine, IdFiller, parseJsonLine, toJsonValue } from '../../src/cli/frame-json.js';

test('bigint: a JSON number when exact, a decimal string otherwise', () => {
  assert.equal(toJsonValue({ a: 5n, b: 2n ** 53n + 1n, c: -(2n ** 63n) }), { a: 5, b: '9007199254740993', c: '-9223372036854775808' });
});

test('binary round-trips as {"$bin": base64}; other one-key maps stay maps', () => {
  const value = parseJsonLine('{"x":{"$bin":"3q2+7w=="},"y":{"$bin":5},"z":{"$bin":"AA","other":1}}') as any;
  assert.ok(Buffer.isBuffer(value.x));
  assert.is(value.x.toString('hex'), 'deadbeef');
  assert.equal(value.y, { $bin: 5 });
  assert.equal(value.z, { $bin: 'AA', other: 1 });
  assert.is(frameLine({ x: value.x }), '{"x":{"$bin":"3q2+7w=="}}');
});

test('frameLine with raw bytes carries the whole frame as hex', () => {
  assert.is(frameLine({ a: 1 }, Buffer.from([0x81, 0xa1, 0x61, 0x01])), '{"frame":{"a":1},"hex":0000000481a16101}'.replace('0000000481a16101', '"0000000481a16101"'));
});

test('IdFiller fills only maps without id and never reuses an explicit id it has seen', () => {
  const ids = new IdFiller();
  assert.equal(ids.fill({ op: 'a' }), { op: 'a', id: 1 });
  assert.equal(ids.fill({ id: 7, op: 'b' }), { id: 7, op: 'b' });
  assert.equal(ids.fill({ op: 'c' }), { op: 'c', id: 8 });
  assert.equal(ids.fill({ id: 'named', op: 'd' }), { id: 'named', op: 'd' });
  assert.equal(ids.fill({ id: null, op: 'e' }), { id: null, op: 'e' });
  assert.equal(ids.fill([1]), [1]);
  assert.is(ids.take(), 9);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { encodeFrame, packValue } from '../../protocol/codec.js';
import { startDaemon, sleep, WireClient } from './wire-client.js';

const header = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

test('invalid msgpack and non-request bodies get an error frame and the connection keeps working', async () => {
  const d = await startDaemon();
  const c = await WireClient.ready(d.port);
  try {
    c.sendRaw(Buffer.concat([header(2), Buffer.from([0xc1, 0xc1])]));
    const bad = await c.waitFor((f) => f.kind === 'error' && f.id === null);
    assert.is(bad.error.code, 'BAD_FRAME');
    const cases: Array<[unknown, string, unknown]> = [
      [[1, 2], 'BAD_FRAME', null],
      ['text', 'BAD_FRAME', null],
      [{ op: 'ping' }, 'BAD_REQUEST', null],
      [{ id: -1, op: 'ping' }, 'BAD_REQUEST', null],
      [{ id: 1.5, op: 'ping' }, 'BAD_REQUEST', null],
      [{ id: 7, op: 5 }, 'BAD_REQUEST', 7],
      [{ id: 8, op: 'ping', args: [1] }, 'BAD_REQUEST', 8],
    ];
    for (const [value, code, id] of cases) {
      const from = c.frames.length;
      c.send(value);
      const f = await c.waitFor((x) => x.kind === 'error', 2000, from);
      assert.is(f.error.code, code, JSON.stringify(value));
      assert.is(f.id, id, JSON.stringify(value));
    }
    // extension types (here a timestamp) are not standard for this protocol
    c.sendRaw(Buffer.concat([header(6), Buffer.from('d6ff00000001', 'hex')]));
    const ext = await c.waitFor((f) => f.kind === 'error' && /timestamp/.test(f.error.message));
    assert.is(ext.error.code, 'BAD_FRAME');
    const pong = await c.request({ id: 99, op: 'ping' });
    assert.is(pong.kind, 'result');
  } finally {
    c.close();
    await d.stop();
  }
});

test('a frame split across many writes is reassembled', async () => {
  const d = await startDaemon();
  const c = await WireClient.ready(d.port);
  try {
    const frame = encodeFrame({ id: 'split', op: 'ping', args: {} });
    for (const byte of frame) {
      c.sendRaw(Buffer.from([byte]));
      await sleep(1);
    }
    const r = await c.waitFor((f) => f.id === 'split');
    assert.is(r.kind, 'result');
  } finally {
    c.close();
    await d.stop();
  }
});

test('a zero-length frame gets BAD_FRAME with id null, then the connection closes; earlier requests are answered first', async () => {
  const d = await startDaemon();
  const c = await WireClient.ready(d.port);
  try {
    c.sendRaw(Buffer.concat([encodeFrame({ id: 1, op: 'ping' }), encodeFrame({ id: 2, op: 'cancel', args: { target: 5 } }), header(0), encodeFrame({ id: 3, op: 'ping' })]));
    await c.waitClosed();
    const ids = c.frames.map((f) => f.id);
    assert.ok(ids.includes(1) && ids.includes(2), 'requests before the bad length were answered');
    assert.not.ok(ids.includes(3), 'nothing after the bad length is read');
    const err = c.frames.find((f) => f.kind === 'error' && f.id === null)!;
    assert.is(err.error.code, 'BAD_FRAME');
  } finally {
    c.close();
    await d.stop();
  }
});

test('an oversized length gets FRAME_TOO_LARGE then close, without waiting for (or allocating) the body', async () => {
  const d = await startDaemon({ maxFrame: 1024 });
  const c = await WireClient.ready(d.port);
  const other = await WireClient.ready(d.port);
  try {
    const rss0 = process.memoryUsage().rss;
    c.sendRaw(header(0xffff_fff0));
    await c.waitClosed(2000);
    const err = c.frames.find((f) => f.kind === 'error')!;
    assert.is(err.error.code, 'FRAME_TOO_LARGE');
    assert.equal(err.error.details, { length: 0xffff_fff0, max_frame: 1024 });
    assert.ok(process.memoryUsage().rss - rss0 < 64 * 1024 * 1024, 'the announced 4 GiB was never allocated');
    const atLimit = packValue({ id: 'big', op: 'ping', args: {} });
    assert.ok(atLimit.length < 1024);
    assert.is((await other.request({ id: 'big', op: 'ping' })).kind, 'result', 'other connections are unaffected');
  } finally {
    c.close();
    other.close();
    await d.stop();
  }
});

test('a body of exactly max_frame bytes is accepted, one byte more is refused', async () => {
  const max = 256;
  const d = await startDaemon({ maxFrame: max });
  const ok = await WireClient.ready(d.port);
  const big = await WireClient.ready(d.port);
  try {
    const pad = (n: number): Buffer => {
      // {id, op, args: {pad: <string>}} sized to exactly n bytes by growing the string
      for (let len = 0; len < n; len++) {
        const body = packValue({ id: 'p', op: 'nope', args: { pad: 'x'.repeat(len) } });
        if (body.length === n) return body;
      }
      throw new Error(`cannot build a body of ${n} bytes`);
    };
    const exact = pad(max);
    ok.sendRaw(Buffer.concat([header(exact.length), exact]));
    const r = await ok.waitFor((f) => f.id === 'p');
    assert.is(r.error.code, 'UNKNOWN_OP', 'the frame itself was accepted');
    const over = pad(max + 1);
    big.sendRaw(Buffer.concat([header(over.length), over]));
    await big.waitClosed();
    assert.is(big.frames.at(-1)!.error.code, 'FRAME_TOO_LARGE');
  } finally {
    ok.close();
    big.close();
    await d.stop();
  }
});

test('the request vectors get the same answers from a daemon over a socket', async () => {
  const vectors = JSON.parse(readFileSync(new URL('../../protocol/vectors/requests.json', import.meta.url), 'utf8')) as Array<{ name: string; hex: string; ok?: boolean; error?: string; field?: string; id: number | string | null }>;
  const d = await startDaemon();
  const c = await WireClient.ready(d.port);
  try {
    for (const v of vectors) {
      const from = c.frames.length;
      c.sendRaw(Buffer.from(v.hex, 'hex'));
      const f = await c.waitFor((x) => x.kind === 'error' || x.kind === 'result', 2000, from);
      if (v.ok) assert.is(f.kind, 'result', v.name);
      else {
        assert.equal([f.error.code, f.error.details?.field, f.id], [v.error, v.field, v.id], v.name);
      }
    }
  } finally {
    c.close();
    await d.stop();
  }
});

test.run();

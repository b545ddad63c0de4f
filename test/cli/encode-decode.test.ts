import { connect as netConnect } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame, frameBody, unpackValue } from '../../protocol/codec.js';
import { startTestDaemon, type TestDaemon } from '../support/client-daemon.js';
import { finish, jsonLines, runCli, spawnCli } from '../support/run-cli.js';

let daemon: TestDaemon;

test.before(async () => {
  daemon = await startTestDaemon();
});
test.after(async () => {
  await daemon?.stop();
});

/** Splits encoded output back into frame values, checking every length header. */
function framesOf(bytes: Buffer): unknown[] {
  const values: unknown[] = [];
  let at = 0;
  while (at < bytes.length) {
    const n = bytes.readUInt32BE(at);
    values.push(unpackValue(bytes.subarray(at + 4, at + 4 + n)));
    at += 4 + n;
  }
  assert.is(at, bytes.length, 'output ends on a frame boundary');
  return values;
}

test('encode: one frame per JSON line, ids filled past explicit ones, $bin as binary, bad lines skipped with exit 1', async () => {
  const input = ['{"op":"hello","args":{"client":"t","protocol":1}}', '{"id":5,"op":"a"}', '', 'nope', '{"op":"b","args":{"blob":{"$bin":"AAEC/w=="}}}', '"just a string"'].join('\n');
  const r = await runCli(['encode'], input);
  assert.is(r.code, 1);
  assert.match(r.stderr, /line 4: expected one JSON value/);
  const frames = framesOf(r.stdoutBytes) as any[];
  assert.is(frames.length, 4);
  assert.equal(frames[0], { op: 'hello', args: { client: 't', protocol: 1 }, id: 1 });
  assert.equal(frames[1], { id: 5, op: 'a' });
  assert.is(frames[2].id, 6);
  assert.ok(Buffer.isBuffer(frames[2].args.blob));
  assert.equal([...frames[2].args.blob], [0, 1, 2, 255]);
  assert.is(frames[3], 'just a string');
});

test('decode: frames to JSON lines; a malformed body is reported and decoding goes on; exit 0', async () => {
  const big = 2n ** 60n + 1n;
  const input = Buffer.concat([
    encodeFrame({ id: 1, kind: 'result', data: { bin: Buffer.from([1, 2]), big, safe: 2 ** 40 } }),
    frameBody(Buffer.from([0xc1])),
    encodeFrame({ kind: 'event', topic: 't', data: null }),
  ]);
  const r = await runCli(['decode'], input);
  assert.is(r.code, 0, r.stderr);
  const lines = jsonLines(r.stdout);
  assert.equal(lines[0], { id: 1, kind: 'result', data: { bin: { $bin: 'AQI=' }, big: big.toString(), safe: 2 ** 40 } });
  assert.is(lines[1].kind, 'malformed');
  assert.is(lines[1].error.code, 'BAD_FRAME');
  assert.is(lines[1].hex, '00000001c1');
  assert.equal(lines[2], { kind: 'event', topic: 't', data: null });
});

test('decode: a length above --max-frame is fatal: error line, stderr, exit 1', async () => {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(1_000_000);
  const r = await runCli(['decode', '--max-frame', '64k'], Buffer.concat([encodeFrame({ ok: 1 }), header, Buffer.alloc(100)]));
  assert.is(r.code, 1);
  const lines = jsonLines(r.stdout);
  assert.equal(lines[0], { ok: 1 });
  assert.is(lines[1].kind, 'malformed');
  assert.is(lines[1].fatal, true);
  assert.is(lines[1].error.code, 'FRAME_TOO_LARGE');
  assert.match(r.stderr, /1000000 bytes exceeds max_frame 65536/);
});

test('decode: input ending inside a frame -> exit 1', async () => {
  const frame = encodeFrame({ truncated: true });
  const r = await runCli(['decode'], frame.subarray(0, frame.length - 2));
  assert.is(r.code, 1);
  assert.match(r.stderr, /input ended inside a frame/);
});

test('pipeline: encode | daemon socket | decode, as with nc', async () => {
  const requests = [
    '{"op":"hello","args":{"client":"pipeline","protocol":1}}',
    '{"op":"ping"}',
    '{"op":"test.steps","args":{"n":2}}',
    '{"op":"test.fail","args":{"code":"CONFLICT"}}',
  ].join('\n');
  const encoder = spawnCli(['encode']);
  const decoder = spawnCli(['decode']);
  const encoded = finish(encoder);
  const decodedDone = finish(decoder);
  const socket = netConnect({ host: '127.0.0.1', port: daemon.port });
  let text = '';
  decoder.stdout.on('data', (c: Buffer) => (text += c.toString()));
  try {
    socket.on('error', () => {});
    // Like `nc -q1`: keep our side open until the answers are in, then close.
    encoder.stdout.pipe(socket, { end: false });
    socket.pipe(decoder.stdin);
    encoder.stdin.end(requests + '\n');
    const deadline = Date.now() + 15_000;
    while (!/"id":4,"kind":"error"/.test(text)) {
      if (Date.now() > deadline) throw new Error(`no answer to request 4; decoded so far:\n${text}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    socket.end();
  }
  assert.is((await encoded).code, 0);
  const r = await decodedDone;
  assert.is(r.code, 0, r.stderr);
  const frames = jsonLines(r.stdout);
  assert.is(frames[0].kind, 'hello');
  assert.is(frames.find((f) => f.id === 1).data.server, 'edgeecho');
  assert.is(frames.find((f) => f.id === 2).data.pong, true);
  assert.equal(frames.filter((f) => f.id === 3).map((f) => f.kind), ['status', 'status', 'result']);
  assert.is(frames.find((f) => f.id === 4).error.code, 'CONFLICT');
});

test.run();

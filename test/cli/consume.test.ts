/**
 * `edgeecho consume HOST:PORT` as a child process against a probe and a plain stream on loopback (no Docker): JSON
 * lines, --raw bytes, the summary and exit codes, a corrupted payload, and the usage errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeBundle, startEmulator, startPlain, stopAll, within } from '../emulators/run-emulator.js';
import { jsonLines, runCli } from '../support/run-cli.js';

test.after(removeBundle);

test('JSON lines: details, every data frame with its payload as $bin, the end frame; summary on stderr; exit 0', async () => {
  try {
    const { port } = await startPlain({ count: 500, payloadBytes: 16 });
    const r = await runCli(['consume', `127.0.0.1:${port}`], '', {}, 20_000);
    assert.is(r.code, 0, r.stderr);
    const lines = jsonLines(r.stdout);
    assert.is(lines.length, 502);
    assert.equal(lines[0], { type: 'details', probe_id: 'probe', count: 500, payload_bytes: 16, rate: 0 });
    assert.equal(Object.keys(lines[1]), ['type', 'seq', 'ts', 'payload']);
    assert.is(lines[1].seq, 0);
    assert.is(Buffer.from(lines[1].payload.$bin, 'base64').length, 16);
    assert.is(lines.at(-1).type, 'end');
    assert.match(r.stderr, /^consume: 500 frames, \d+ bytes, lost 0, out of order 0, checksum ok, [\d.]+ MB\/s\n$/);
  } finally {
    stopAll();
  }
});

test('--raw: only the payload bytes, count x payload_bytes of them', async () => {
  try {
    const { port } = await startPlain({ count: 20_000, payloadBytes: 100 });
    const r = await runCli(['consume', `127.0.0.1:${port}`, '--raw'], '', {}, 20_000);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdoutBytes.length, 20_000 * 100);
    assert.is(r.stdoutBytes.readUInt32BE(100 * 7), 7, 'payload i starts with i (the emulator probe)');
  } finally {
    stopAll();
  }
});

test('a corrupted payload: every frame is still written, the summary says checksum MISMATCH, exit 1', async () => {
  try {
    const probe = await startEmulator('probe', { PROBE_PORT: 0, PROBE_COUNT: 1000, PROBE_FAULT_CORRUPT_SEQ: 500 });
    const { port: probePort } = await within(5000, 'probe ready', probe.ready);
    const stream = await startEmulator('stream', { PROBE_HOST: '127.0.0.1', PROBE_PORT: probePort as number, STREAM_PORT: 0, STREAM_GRACE_MS: 60_000 });
    const { port } = await within(5000, 'stream ready', stream.ready);
    const r = await runCli(['consume', `127.0.0.1:${port}`, '--raw'], '', {}, 20_000);
    assert.is(r.code, 1);
    assert.is(r.stdoutBytes.length, 1000 * 64);
    assert.match(r.stderr, /consume: 1000 frames, .*checksum MISMATCH/);
    assert.match(r.stderr, /error DATA_LOSS: checksum mismatch: CRC-32 of the payloads received is \d+, the end frame says \d+/);
  } finally {
    stopAll();
  }
});

test('usage and connection errors: exit 2 with the usage, or 1 naming the location', async () => {
  const none = await runCli(['consume']);
  assert.is(none.code, 2);
  assert.match(none.stderr, /expected a session id \(10 characters of a-z2-7\) or HOST:PORT/);
  const bad = await runCli(['consume', 'nonsense']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /"nonsense" is neither a session id .* nor HOST:PORT/);
  const help = await runCli(['consume', '--help']);
  assert.is(help.code, 0);
  assert.match(help.stdout, /usage: edgeecho consume ID\|HOST:PORT/);
  const refused = await runCli(['consume', '127.0.0.1:1']);
  assert.is(refused.code, 1);
  assert.match(refused.stderr, /error CONNECTION_CLOSED: cannot connect to the stream at 127\.0\.0\.1:1: ECONNREFUSED/);
  const noDaemon = await runCli(['consume', 'abcdefghij', '--port', '1']);
  assert.is(noDaemon.code, 1);
  assert.match(noDaemon.stderr, /cannot connect to the edgeecho daemon at 127\.0\.0\.1:1/);
});

test.run();

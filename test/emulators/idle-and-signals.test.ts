/** No wait lasts forever: idle timeouts and SIGTERM end a run with a stats line, a reason and a non-zero exit. */
import { createServer, type Server } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeBundle, startEmulator, stopAll, within } from './run-emulator.js';

test.after(removeBundle);

test('probe with no stream: idle timeout, exit 3, the reason names what it waited for', async () => {
  try {
    const probe = await startEmulator('probe', { PROBE_PORT: 0, PROBE_COUNT: 10, EMULATOR_IDLE_TIMEOUT_MS: 300 });
    const r = await within(5000, 'probe exit', probe.exited);
    assert.is(r.code, 3);
    assert.match(String(r.stats?.error), /idle timeout.*EMULATOR_IDLE_TIMEOUT_MS=300.*waiting for the stream to connect/);
  } finally {
    stopAll();
  }
});

test('segmentation connected to a stream that never sends: idle timeout, exit 3', async () => {
  const sockets = new Set<import('node:net').Socket>();
  const silent: Server = createServer((s) => sockets.add(s));
  try {
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const seg = await startEmulator('segmentation', { STREAM_HOST: '127.0.0.1', STREAM_PORT: port, EMULATOR_IDLE_TIMEOUT_MS: 300 });
    await within(5000, 'segmentation ready', seg.ready);
    const r = await within(5000, 'segmentation exit', seg.exited);
    assert.is(r.code, 3);
    assert.match(String(r.stats?.error), /waiting for the probe details/);
  } finally {
    stopAll();
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

test('segmented stream whose segmentation never connects: idle timeout; the probe then fails too', async () => {
  try {
    const probe = await startEmulator('probe', { PROBE_PORT: 0, PROBE_COUNT: 100, EMULATOR_IDLE_TIMEOUT_MS: 2000 });
    const { port } = await within(5000, 'probe ready', probe.ready);
    const stream = await startEmulator('stream', { PROBE_HOST: '127.0.0.1', PROBE_PORT: port as number, STREAM_PORT: 0, STREAM_MODE: 'segmented', EMULATOR_IDLE_TIMEOUT_MS: 300 });
    const s = await within(5000, 'stream exit', stream.exited);
    assert.is(s.code, 3);
    assert.match(String(s.stats?.error), /waiting for the segmentation server to connect/);
    const p = await within(5000, 'probe exit', probe.exited);
    assert.is.not(p.code, 0);
    assert.match(String(p.stats?.error), /stream closed the connection|idle timeout/);
  } finally {
    stopAll();
  }
});

test('SIGTERM mid-run: stats with the reason, exit 143; SIGTERM of an idle probe likewise', async () => {
  try {
    const probe = await startEmulator('probe', { PROBE_PORT: 0, PROBE_COUNT: 1_000_000, PROBE_RATE: 2000 });
    const { port } = await within(5000, 'probe ready', probe.ready);
    const stream = await startEmulator('stream', { PROBE_HOST: '127.0.0.1', PROBE_PORT: port as number, STREAM_PORT: 0, STREAM_MODE: 'segmented' });
    const { port: streamPort } = await within(5000, 'stream ready', stream.ready);
    const seg = await startEmulator('segmentation', { STREAM_HOST: '127.0.0.1', STREAM_PORT: streamPort as number });
    await within(5000, 'segmentation ready', seg.ready);
    await new Promise((r) => setTimeout(r, 300));
    seg.child.kill('SIGTERM');
    const g = await within(5000, 'segmentation exit', seg.exited);
    assert.is(g.code, 143);
    assert.match(String(g.stats?.error), /terminated by SIGTERM while receiving data frames/);
    assert.ok((g.stats?.frames as number) > 0 && (g.stats?.frames as number) < 1_000_000);
    probe.child.kill('SIGTERM');
    stream.child.kill('SIGTERM');
    const [p, s] = await within(5000, 'exits', Promise.all([probe.exited, stream.exited]));
    assert.is.not(p.code, 0);
    assert.is.not(s.code, 0);
    assert.is(p.stats?.event, 'stats');
    assert.is(s.stats?.event, 'stats');
    // Interrupted after ~0.3 s at 2000 frames/s: the probe's figures are real, not a 0 ms window at a huge rate.
    const pd = p.stats?.duration_ms as number;
    assert.ok(pd >= 200, `probe duration_ms ${pd}`);
    assert.ok((p.stats?.rate as number) > 500 && (p.stats?.rate as number) < 4000, `probe rate ${p.stats?.rate} over ${pd} ms`);

    const idle = await startEmulator('probe', { PROBE_PORT: 0 });
    await within(5000, 'probe ready', idle.ready);
    idle.child.kill('SIGTERM');
    const i = await within(5000, 'idle probe exit', idle.exited);
    assert.is(i.code, 143);
    assert.match(String(i.stats?.error), /terminated by SIGTERM while waiting for the stream to connect/);
  } finally {
    stopAll();
  }
});

test('a bad setting: exit 2 with a message naming the variable and the expected range', async () => {
  try {
    const probe = await startEmulator('probe', { PROBE_COUNT: 'many' });
    const r = await within(5000, 'probe exit', probe.exited);
    assert.is(r.code, 2);
    assert.match(String(r.stats?.error), /PROBE_COUNT: expected an integer in 0\.\.\d+, got "many"/);
  } finally {
    stopAll();
  }
});

test.run();

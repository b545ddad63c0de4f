/** Segmented mode end to end on loopback, whatever order the three start in. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, removeBundle, startEmulator, stopAll, within } from './run-emulator.js';

const COUNT = 20_000;

test.after(removeBundle);

test('segmented: 0 lost, checksum ok, segments cut at SEGMENT_FRAMES', async () => {
  try {
    const probe = await startEmulator('probe', { PROBE_PORT: 0, PROBE_ID: 'seg-1', PROBE_COUNT: COUNT });
    const { port } = await within(5000, 'probe ready', probe.ready);
    const stream = await startEmulator('stream', { PROBE_HOST: '127.0.0.1', PROBE_PORT: port as number, STREAM_PORT: 0, STREAM_MODE: 'segmented' });
    const streamReady = await within(5000, 'stream ready', stream.ready);
    const segmentation = await startEmulator('segmentation', { STREAM_HOST: '127.0.0.1', STREAM_PORT: streamReady.port as number, SEGMENT_FRAMES: 3000 });
    const [p, s, g] = await within(15_000, 'exits', Promise.all([probe.exited, stream.exited, segmentation.exited]));
    assert.is(g.code, 0, JSON.stringify(g.stats));
    assert.is(g.stats?.frames, COUNT);
    assert.is(g.stats?.lost, 0);
    assert.is(g.stats?.out_of_order, 0);
    assert.is(g.stats?.checksum_ok, true);
    assert.is(g.stats?.checksum, p.stats?.checksum);
    assert.is(g.stats?.segments, Math.ceil(COUNT / 3000));
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.is(p.code, 0, JSON.stringify(p.stats));
    assert.is(segmentation.lines[0]!.event, 'ready');
  } finally {
    stopAll();
  }
});

test('started in reverse order: stream and segmentation retry with backoff until their peer answers', async () => {
  try {
    const probePort = await freePort();
    const streamPort = await freePort();
    const segmentation = await startEmulator('segmentation', { STREAM_HOST: '127.0.0.1', STREAM_PORT: streamPort });
    await new Promise((r) => setTimeout(r, 200));
    const stream = await startEmulator('stream', { PROBE_HOST: '127.0.0.1', PROBE_PORT: probePort, STREAM_PORT: streamPort, STREAM_MODE: 'segmented' });
    await new Promise((r) => setTimeout(r, 400));
    assert.is(stream.lines.length, 0, 'stream is not ready before the probe answers');
    const probe = await startEmulator('probe', { PROBE_PORT: probePort, PROBE_COUNT: COUNT });
    const [p, s, g] = await within(15_000, 'exits', Promise.all([probe.exited, stream.exited, segmentation.exited]));
    assert.match(stream.stderr, /connect attempt failed; retrying/);
    assert.match(segmentation.stderr, /connect attempt failed; retrying/);
    assert.is(g.code, 0, JSON.stringify(g.stats));
    assert.is(g.stats?.checksum_ok, true);
    assert.is(g.stats?.frames, COUNT);
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.is(p.code, 0, JSON.stringify(p.stats));
  } finally {
    stopAll();
  }
});

test.run();

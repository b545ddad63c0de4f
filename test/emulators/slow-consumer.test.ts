/** A consumer that stops reading is dropped and counted; the others still get every frame. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { consume, removeBundle, startEmulator, stopAll, within } from './run-emulator.js';

const COUNT = 40_000;
const PAYLOAD = 1024;

test.after(removeBundle);

test('a stalled consumer is dropped once it lags STREAM_MAX_QUEUE_BYTES behind; the fast one completes', async () => {
  try {
    const probe = await startEmulator('probe', { PROBE_PORT: 0, PROBE_COUNT: COUNT, PROBE_PAYLOAD_BYTES: PAYLOAD });
    const { port } = await within(5000, 'probe ready', probe.ready);
    const stream = await startEmulator('stream', {
      PROBE_HOST: '127.0.0.1',
      PROBE_PORT: port as number,
      STREAM_PORT: 0,
      STREAM_GRACE_MS: 60_000,
      STREAM_MAX_QUEUE_BYTES: 256 * 1024,
    });
    const streamReady = await within(5000, 'stream ready', stream.ready);
    const stalled = consume(streamReady.port as number);
    stalled.socket.pause();
    await new Promise<void>((r) => stalled.socket.once('connect', () => r()));
    const fast = consume(streamReady.port as number);
    const got = await within(20_000, 'fast consumer done', fast.done);
    assert.is(got.frames, COUNT);
    assert.is(got.outOfOrder, 0);
    const s = await within(10_000, 'stream exit', stream.exited);
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.is(s.stats?.dropped_consumers, 1);
    assert.is(s.stats?.consumers, 2);
    assert.is(s.stats?.acked_consumers, 1);
    // ~41 MB went through; the stalled consumer got no more than the kernel buffers and the queue limit held.
    stalled.socket.resume();
    const partial = await within(5000, 'stalled consumer closed', stalled.done);
    assert.ok(partial.frames < COUNT / 2, `stalled consumer received ${partial.frames} frames`);
    assert.is(partial.end, null);
    assert.is((await probe.exited).code, 0);
  } finally {
    stopAll();
  }
});

test.run();

/** Plain mode: a consumer receives the details frame first, then every data frame in order, and acks the end. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { consume, removeBundle, startEmulator, stopAll, within } from './run-emulator.js';

const COUNT = 20_000;

test.after(removeBundle);

test('plain mode: the first consumer starts the run and gets every frame in order', async () => {
  try {
    const probe = await startEmulator('probe', { PROBE_PORT: 0, PROBE_ID: 'plain-1', PROBE_COUNT: COUNT, PROBE_PAYLOAD_BYTES: 100 });
    const probeReady = await within(5000, 'probe ready', probe.ready);
    assert.equal(probeReady, { event: 'ready', role: 'probe', port: probeReady.port, probe_id: 'plain-1', count: COUNT, payload_bytes: 100, rate: 0 });
    const stream = await startEmulator('stream', { PROBE_HOST: '127.0.0.1', PROBE_PORT: probeReady.port as number, STREAM_PORT: 0, STREAM_MODE: 'plain', STREAM_GRACE_MS: 60_000 });
    const streamReady = await within(5000, 'stream ready', stream.ready);
    assert.is(streamReady.mode, 'plain');
    assert.equal(streamReady.probe, { probe_id: 'plain-1', count: COUNT, payload_bytes: 100, rate: 0 });

    const consumer = consume(streamReady.port as number);
    const got = await within(15_000, 'consumer done', consumer.done);
    assert.equal(got.details, { type: 'details', probe_id: 'plain-1', count: COUNT, payload_bytes: 100, rate: 0 });
    assert.is(got.firstSeq, 0);
    assert.is(got.frames, COUNT);
    assert.is(got.outOfOrder, 0);
    assert.is(got.end?.count, COUNT);

    const [p, s] = await within(10_000, 'exits', Promise.all([probe.exited, stream.exited]));
    assert.is(p.code, 0, JSON.stringify(p.stats));
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.is(p.stats?.frames, COUNT);
    assert.is(p.stats?.checksum, got.end?.checksum);
    assert.is(s.stats?.lost, 0);
    assert.is(s.stats?.consumers, 1);
    assert.is(s.stats?.acked_consumers, 1);
    assert.is(probe.lines.length, 2, 'stdout holds only the ready and stats lines');
  } finally {
    stopAll();
  }
});

test('plain mode: with no consumer the run starts after STREAM_GRACE_MS and still completes', async () => {
  try {
    const probe = await startEmulator('probe', { PROBE_PORT: 0, PROBE_COUNT: 5000 });
    const { port } = await within(5000, 'probe ready', probe.ready);
    const stream = await startEmulator('stream', { PROBE_HOST: '127.0.0.1', PROBE_PORT: port as number, STREAM_PORT: 0, STREAM_GRACE_MS: 200 });
    const [p, s] = await within(10_000, 'exits', Promise.all([probe.exited, stream.exited]));
    assert.is(p.code, 0, JSON.stringify(p.stats));
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.is(s.stats?.frames, 5000);
    assert.is(s.stats?.consumers, 0);
  } finally {
    stopAll();
  }
});

test.run();

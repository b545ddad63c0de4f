/**
 * How a plain stream ends toward its consumers (protocol/DATA.md section 5): the end frame, then the stream's FIN;
 * a consumer that reads to EOF and closes, without any ack, is done; early leavers, stalled and late consumers are
 * counted apart; and no sender exits before a receiver that stays has the end frame, wherever another consumer
 * drops its socket (seeded, replayable: DATA_PLANE_SEED).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { prng } from '../support/prng.js';
import { consume, readRaw, removeBundle, startPlain, stopAll, within } from './run-emulator.js';

test.after(removeBundle);

const statsOf = (s: { stats?: Record<string, unknown> }): Record<string, unknown> => s.stats ?? {};

test('a consumer that reads to EOF and closes, sending nothing, completes the run: exit 0 everywhere', async () => {
  try {
    const { probe, stream, port } = await startPlain({ count: 5000, payloadBytes: 100 });
    const got = await within(15_000, 'reader done', readRaw(port).done);
    assert.ok(got.eof, 'the stream half-closed after the end frame');
    assert.equal(got.frames[0], { type: 'details', probe_id: 'probe', count: 5000, payload_bytes: 100, rate: 0 });
    assert.is(got.frames.length, 5002);
    assert.is(got.end?.count, 5000);
    const [p, s] = await within(10_000, 'exits', Promise.all([probe.exited, stream.exited]));
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.is(p.code, 0, JSON.stringify(p.stats));
    assert.is(got.end?.checksum, p.stats?.checksum);
    assert.equal(
      { consumers: statsOf(s).consumers, completed: statsOf(s).completed_consumers, acked: statsOf(s).acked_consumers, left: statsOf(s).left_consumers },
      { consumers: 1, completed: 1, acked: 0, left: 0 },
    );
  } finally {
    stopAll();
  }
});

test('two consumers: the first from seq 0, a later one from the next frame relayed, both to the end', async () => {
  try {
    const { stream, port } = await startPlain({ count: 3000, rate: 6000 });
    const first = consume(port);
    // joins once the first has seen data: the run is under way
    await within(5000, 'first data', new Promise<void>((r) => first.socket.once('data', () => setTimeout(r, 100))));
    const second = readRaw(port);
    const [a, b] = await within(15_000, 'both done', Promise.all([first.done, second.done]));
    assert.is(a.firstSeq, 0);
    assert.is(a.frames, 3000);
    const seqs = b.frames.filter((f) => f.type === 'data').map((f) => f.seq as number);
    assert.equal(b.frames[0]?.type, 'details', 'a late consumer gets the details frame first too');
    assert.ok(seqs[0]! > 0, `the late consumer starts after seq 0, got ${seqs[0]}`);
    assert.ok(seqs.every((seq, i) => seq === seqs[0]! + i), 'no gap after its first frame');
    assert.is(seqs.at(-1), 2999);
    assert.is(b.end?.count, 3000);
    const s = await within(10_000, 'stream exit', stream.exited);
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.equal([statsOf(s).consumers, statsOf(s).late_consumers, statsOf(s).completed_consumers, statsOf(s).acked_consumers], [2, 1, 2, 1]);
  } finally {
    stopAll();
  }
});

test('a consumer that half-closes at once (ncat with stdin at EOF) still gets the whole stream', async () => {
  try {
    const { probe, stream, port } = await startPlain({ count: 3000, idleMs: 2000 });
    const quiet = readRaw(port, { dropAfter: 0, how: 'end' });
    const got = await within(10_000, 'half-closed reader done', quiet.done);
    assert.ok(got.eof);
    assert.is(got.end?.count, 3000);
    const [p, s] = await within(10_000, 'exits', Promise.all([probe.exited, stream.exited]));
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.is(p.code, 0);
    // it can no longer say done by closing: let go after half the idle timeout
    assert.equal([statsOf(s).left_consumers, statsOf(s).unconfirmed_consumers], [0, 1]);
  } finally {
    stopAll();
  }
});

test('a consumer that disconnects mid-stream is counted left; the run still completes', async () => {
  try {
    const { probe, stream, port } = await startPlain({ count: 4000, rate: 8000 });
    const leaver = readRaw(port, { dropAfter: 20_000 });
    const got = await within(10_000, 'leaver closed', leaver.done);
    assert.is(got.end, null);
    const [p, s] = await within(15_000, 'exits', Promise.all([probe.exited, stream.exited]));
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.is(p.code, 0);
    assert.equal([statsOf(s).left_consumers, statsOf(s).completed_consumers], [1, 0]);
  } finally {
    stopAll();
  }
});

test('a sole consumer that stops reading is dropped at half the idle timeout; the stream then drains the probe', async () => {
  try {
    const { probe, stream, port } = await startPlain({ count: 100_000, payloadBytes: 1024, idleMs: 1000 });
    const stalled = readRaw(port);
    stalled.socket.pause();
    const [p, s] = await within(15_000, 'exits', Promise.all([probe.exited, stream.exited]));
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.is(p.code, 0, JSON.stringify(p.stats));
    assert.is(statsOf(s).dropped_consumers, 1);
    assert.match(stream.stderr, /consumer dropped.*stopped reading/);
  } finally {
    stopAll();
  }
});

test('after the end frame: a reader that never closes is let go as unconfirmed; one arriving then gets details and EOF', async () => {
  try {
    const { probe, stream, port } = await startPlain({ count: 1000, idleMs: 2000 });
    const holder = readRaw(port);
    holder.socket.on('end', () => undefined);
    holder.socket.allowHalfOpen = true; // reads to EOF but keeps its side open, like nc whose stdin stays open
    await within(5000, 'end frame', new Promise<void>((r) => holder.socket.on('end', () => r())));
    const after = await within(5000, 'after-end reader', readRaw(port).done);
    assert.ok(after.eof);
    assert.equal(after.frames.map((f) => f.type), ['details']);
    const [p, s] = await within(10_000, 'exits', Promise.all([probe.exited, stream.exited]));
    assert.is(s.code, 0, JSON.stringify(s.stats));
    assert.is(p.code, 0);
    assert.equal([statsOf(s).consumers, statsOf(s).unconfirmed_consumers], [1, 1]);
  } finally {
    stopAll();
  }
});

const SEED = Number(process.env.DATA_PLANE_SEED ?? 20261130);
/** `destroy`: the consumer goes away (RST if bytes are unread, else FIN); `end`: it half-closes and reads on. */
const ROUNDS = 8;

test(`consumers dropped at random points (seed ${SEED}): a consumer that stays always gets every frame and the end frame`, async () => {
  const random = prng(SEED);
  const count = 4000;
  const frameBytes = 4 + 40 + 2 + 64;
  for (let round = 0; round < ROUNDS; round++) {
    // anywhere from the details frame to past the end frame, weighted toward the last frames where the end races
    const total = count * frameBytes + 100;
    const dropAfter = Math.floor(random() < 0.5 ? random() * total : total - random() * frameBytes * 20);
    const how = random() < 0.5 ? 'destroy' : 'end';
    const what = `round ${round} (seed ${SEED}): drop after ${dropAfter} bytes by ${how}`;
    try {
      // a short idle timeout: a half-closed dropper is let go (unconfirmed) after half of it
      const { probe, stream, port } = await startPlain({ count, rate: random() < 0.5 ? 0 : 20_000, idleMs: 2000 });
      const witness = readRaw(port);
      const dropper = readRaw(port, { dropAfter, how });
      const [w, d] = await within(15_000, `readers of ${what}`, Promise.all([witness.done, dropper.done]));
      const [p, s] = await within(15_000, `exits of ${what}`, Promise.all([probe.exited, stream.exited]));
      assert.ok(w.eof, what);
      assert.is(w.frames.length, count + 2, what);
      assert.is(w.end?.count, count, what);
      assert.is(w.end?.checksum, p.stats?.checksum, what);
      assert.is(s.code, 0, `${what}: ${JSON.stringify(s.stats)}`);
      assert.is(p.code, 0, `${what}: ${JSON.stringify(p.stats)}`);
      const st = statsOf(s);
      const settled = ['completed_consumers', 'left_consumers', 'unconfirmed_consumers'].reduce((n, k) => n + (st[k] as number), 0);
      assert.is(settled, 2, `${what}: ${JSON.stringify(st)}`);
      if (how === 'end') {
        // a half-close is not a goodbye: the dropper still reads, and gets everything
        assert.ok(d.eof && d.end?.count === count, `${what}: a half-closed consumer still gets the whole stream`);
        assert.is(st.left_consumers, 0, `${what}: ${JSON.stringify(st)}`);
      } else if (d.end !== null) {
        // a dropper that had the end frame is always counted done; one that had not may be counted either way
        // (its FIN can cross the last bytes in flight: DATA.md 5.3; only an ack is exact)
        assert.is(st.completed_consumers, 2, `${what}: the dropper had the end frame: ${JSON.stringify(st)}`);
      }
    } finally {
      stopAll();
    }
  }
});

test.run();

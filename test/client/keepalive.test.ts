import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, EdgeechoError, type Timers } from '../../src/client/index.js';
import { startFakeServer } from '../support/fake-server.js';

/** Timers driven by hand: `advance` runs whatever falls due. */
function manualTimers(): Timers & { advance(ms: number): void; pending(): number } {
  let now = 0;
  let seq = 0;
  const due = new Map<number, { at: number; fn: () => void }>();
  return {
    setTimeout: (fn, ms) => {
      due.set(++seq, { at: now + ms, fn });
      return seq;
    },
    clearTimeout: (h) => void due.delete(h as number),
    now: () => now,
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const next = [...due.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!next) break;
        now = next[1].at;
        due.delete(next[0]);
        next[1].fn();
      }
      now = end;
    },
    pending: () => due.size,
  };
}

const settle = () => new Promise((r) => setTimeout(r, 30));

test('pings only after keepaliveMs without sending, and not while requests keep the line busy', async () => {
  const server = await startFakeServer();
  const timers = manualTimers();
  try {
    const connecting = connect({ port: server.port, keepaliveMs: 1_000, timers });
    const client = await connecting;
    try {
      const ops = () => server.connections[0]!.received.map((r) => r.op);
      timers.advance(600);
      await client.request('work');
      timers.advance(600);
      await settle();
      assert.equal(ops(), ['hello', 'work'], 'a send 600 ms ago postpones the ping');
      timers.advance(500);
      await settle();
      assert.equal(ops(), ['hello', 'work', 'ping']);
      timers.advance(1_000);
      await settle();
      assert.equal(ops(), ['hello', 'work', 'ping', 'ping']);
    } finally {
      await client.close();
    }
    assert.is(timers.pending(), 0, 'close() clears the keepalive timer');
  } finally {
    await server.close();
  }
});

test('an unanswered keepalive ping drops the connection with TIMEOUT', async () => {
  const server = await startFakeServer({
    handle: (req, conn) => {
      if (req.op === 'hello') conn.writer.send({ id: req.id, kind: 'result', data: { protocol: 1 } });
    },
  });
  const timers = manualTimers();
  try {
    const client = await connect({ port: server.port, keepaliveMs: 1_000, timers });
    const closed = new Promise<EdgeechoError | undefined>((resolve) => client.once('close', resolve));
    const pending = client.request('never').catch((e: EdgeechoError) => e);
    timers.advance(1_000);
    await settle();
    timers.advance(1_000);
    const err = await closed;
    assert.is(err?.code, 'TIMEOUT');
    assert.match(err!.message, /keepalive ping .* unanswered within 1000 ms \(keepaliveMs\)/);
    assert.is(((await pending) as EdgeechoError).code, 'TIMEOUT');
  } finally {
    await server.close();
  }
});

test.run();

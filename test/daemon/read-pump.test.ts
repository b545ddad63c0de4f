import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FRAMES_PER_TURN, ReadPump, TURN_BUDGET_MS, type Handled, type Split } from '../../src/daemon/read-pump.js';
import { TurnScheduler } from '../../src/daemon/turn-scheduler.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A pump on a fake clock (no turn ends on time unless a test advances it) with a host that records what it sees. */
function fakeHost(outcome: (body: Buffer) => Handled = () => 'done') {
  const clock = { ms: 0 };
  const host = { handled: [] as number[], paused: 0, resumed: 0, blocked: false, fatalSeen: null as unknown, clock };
  const pump = new ReadPump({
    handle: (body) => {
      const result = outcome(body);
      if (result !== 'hold') host.handled.push(body[0]!);
      return result;
    },
    blocked: () => host.blocked,
    fatal: (err) => (host.fatalSeen = err),
    pause: () => host.paused++,
    resume: () => host.resumed++,
  }, new TurnScheduler(1, 2, () => clock.ms));
  return { host, pump };
}

/** A "chunk" of n one-byte bodies 0..n-1 (mod 256); with `fatal`, the split throws after them. */
function chunk(n: number, fatal?: Error): { bytes: Buffer; split: Split } {
  const bytes = Buffer.from(Array.from({ length: n }, (_, i) => i % 256));
  return {
    bytes,
    split: (c, onBody) => {
      for (let i = 0; i < c.length; i++) onBody(c.subarray(i, i + 1));
      if (fatal) throw fatal;
    },
  };
}

const feed = (pump: ReadPump, n: number, fatal?: Error): void => {
  const c = chunk(n, fatal);
  pump.feed(c.bytes, c.split);
};

test('a chunk within the turn is handled as it is split: no pause, no queue', () => {
  const { host, pump } = fakeHost();
  feed(pump, 10);
  assert.is(host.handled.length, 10);
  assert.is(host.paused, 0);
  assert.is(pump.queued, 0);
});

test('a chunk ending with an async op (a hello, one session op) costs no pause and no turn', () => {
  const { host, pump } = fakeHost((b) => (b[0] === 1 ? 'async' : 'done'));
  feed(pump, 2);
  assert.equal(host.handled, [0, 1]);
  assert.is(host.paused, 0);
});

test('at most FRAMES_PER_TURN bodies per turn; paused while bodies are queued, resumed once they are handled', async () => {
  const { host, pump } = fakeHost();
  feed(pump, FRAMES_PER_TURN * 2 + 5);
  assert.is(host.handled.length, FRAMES_PER_TURN, 'the first turn stops at the cap');
  assert.is(host.paused, 1);
  assert.is(pump.queued, FRAMES_PER_TURN + 5);
  await nextTurn();
  assert.is(host.handled.length, FRAMES_PER_TURN * 2);
  assert.is(host.resumed, 0, 'not read while bodies are queued');
  await nextTurn();
  assert.is(host.handled.length, FRAMES_PER_TURN * 2 + 5);
  assert.is(host.resumed, 1);
  assert.equal(host.handled.slice(0, 3), [0, 1, 2], 'in order');
});

test('a turn also ends once TURN_BUDGET_MS is spent (the clock is read every 16 frames)', async () => {
  const { host, pump } = fakeHost((b) => {
    if (b[0] === 19) host.clock.ms += TURN_BUDGET_MS;
    return 'done';
  });
  feed(pump, 100);
  assert.is(host.handled.length, 31, 'body 19 spent the budget; the clock, read once 31 are handled, ends the turn');
  await nextTurn();
  assert.is(host.handled.length, 100);
});

test('a held body stays first and is offered again on kick; nothing behind it runs meanwhile', async () => {
  let slots = 0;
  const { host, pump } = fakeHost((b) => (b[0] === 1 && slots === 0 ? 'hold' : 'done'));
  feed(pump, 3);
  assert.equal(host.handled, [0]);
  await nextTurn();
  assert.equal(host.handled, [0], 'still waiting: no turn is scheduled while held');
  assert.is(host.paused, 1);
  slots = 1;
  pump.kick();
  assert.equal(host.handled, [0], 'the kick asks for a turn rather than running at once');
  await nextTurn();
  assert.equal(host.handled, [0, 1, 2]);
  assert.is(host.resumed, 1);
});

test('blocked output stops handling, and keeps the socket paused even with nothing queued, until kick', async () => {
  const { host, pump } = fakeHost();
  host.blocked = true;
  feed(pump, 2);
  assert.equal(host.handled, []);
  assert.is(host.paused, 1);
  host.blocked = false;
  pump.kick();
  await nextTurn();
  assert.equal(host.handled, [0, 1]);
  assert.is(host.resumed, 1);
});

test('an async body lets its microtasks run before the next body, and a flood of them still yields to the event loop', async () => {
  const order: string[] = [];
  const { host, pump } = fakeHost((b) => {
    order.push(`handle ${b[0]}`);
    queueMicrotask(() => order.push(`answer ${b[0]}`));
    return 'async';
  });
  feed(pump, 2);
  await nextTurn();
  assert.equal(order, ['handle 0', 'answer 0', 'handle 1', 'answer 1']);
  feed(pump, FRAMES_PER_TURN + 10);
  let immediateRan = false;
  setImmediate(() => (immediateRan = immediateRan || host.handled.length < 2 + FRAMES_PER_TURN + 10));
  await nextTurn();
  await nextTurn();
  assert.ok(immediateRan, 'another connection\'s callback ran before this flood was done');
});

test('a fatal error is delivered after the bodies before it; stop drops the queue', async () => {
  const { host, pump } = fakeHost();
  feed(pump, 2, new Error('bad length'));
  assert.equal(host.handled, [0, 1]);
  assert.is((host.fatalSeen as Error).message, 'bad length');
  assert.is(host.resumed, 0, 'not read again after a fatal error');

  const second = fakeHost();
  feed(second.pump, FRAMES_PER_TURN + 1);
  second.pump.stop();
  await nextTurn();
  assert.is(second.host.handled.length, FRAMES_PER_TURN);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FRAMES_PER_TURN, ReadPump, type Handled } from '../../src/daemon/read-pump.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function fakeHost(outcome: (body: Buffer) => Handled = () => 'done') {
  const host = {
    handled: [] as number[],
    paused: 0,
    resumed: 0,
    blocked: false,
    fatalSeen: null as unknown,
    handle(body: Buffer): Handled {
      const result = outcome(body);
      if (result !== 'hold') host.handled.push(body[0]!);
      return result;
    },
  };
  const pump = new ReadPump({
    handle: (b) => host.handle(b),
    blocked: () => host.blocked,
    fatal: (err) => (host.fatalSeen = err),
    pause: () => host.paused++,
    resume: () => host.resumed++,
  });
  return { host, pump };
}

const bodies = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => Buffer.from([i % 256]));

test('handles at most FRAMES_PER_TURN bodies per turn, paused until the queue is empty, then resumes', async () => {
  const { host, pump } = fakeHost();
  for (const b of bodies(FRAMES_PER_TURN * 2 + 5)) pump.add(b);
  pump.kick();
  assert.is(host.handled.length, FRAMES_PER_TURN, 'the first turn stops at the cap');
  assert.is(host.paused, 1);
  assert.is(host.resumed, 0, 'not read while bodies are queued');
  await nextTurn();
  assert.is(host.handled.length, FRAMES_PER_TURN * 2);
  await nextTurn();
  assert.is(host.handled.length, FRAMES_PER_TURN * 2 + 5);
  assert.is(host.resumed, 1);
  assert.is(pump.queued, 0);
});

test('a held body stays first and is offered again on kick; nothing behind it runs meanwhile', async () => {
  let slots = 0;
  const { host, pump } = fakeHost((b) => (b[0] === 1 && slots === 0 ? 'hold' : 'done'));
  for (const b of bodies(3)) pump.add(b);
  pump.kick();
  assert.equal(host.handled, [0]);
  await nextTurn();
  assert.equal(host.handled, [0], 'still waiting: no turn is scheduled while held');
  assert.is(host.resumed, 0);
  slots = 1;
  pump.kick();
  assert.equal(host.handled, [0, 1, 2]);
  assert.is(host.resumed, 1);
});

test('blocked output stops handling even with nothing queued; kick after it clears resumes reading', () => {
  const { host, pump } = fakeHost();
  host.blocked = true;
  for (const b of bodies(2)) pump.add(b);
  pump.kick();
  assert.equal(host.handled, []);
  host.blocked = false;
  pump.kick();
  assert.equal(host.handled, [0, 1]);
  assert.is(host.resumed, 1);
});

test('an async body lets microtasks run before the next body', async () => {
  const order: string[] = [];
  const { pump } = fakeHost((b) => {
    order.push(`handle ${b[0]}`);
    queueMicrotask(() => order.push(`answer ${b[0]}`));
    return 'async';
  });
  for (const b of bodies(2)) pump.add(b);
  pump.kick();
  await nextTurn();
  assert.equal(order, ['handle 0', 'answer 0', 'handle 1', 'answer 1']);
});

test('a fatal error is delivered after the bodies before it; stop drops the queue', async () => {
  const { host, pump } = fakeHost();
  for (const b of bodies(2)) pump.add(b);
  pump.failAfterQueue(new Error('bad length'));
  pump.kick();
  assert.equal(host.handled, [0, 1]);
  assert.is((host.fatalSeen as Error).message, 'bad length');
  assert.is(host.resumed, 0, 'not read again after a fatal error');

  const second = fakeHost();
  for (const b of bodies(FRAMES_PER_TURN + 1)) second.pump.add(b);
  second.pump.kick();
  second.pump.stop();
  await nextTurn();
  assert.is(second.host.handled.length, FRAMES_PER_TURN);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TurnScheduler } from '../../src/daemon/turn-scheduler.js';

const nextIteration = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const busy = (ms: number): void => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

test('turns run round-robin within the round budget; the rest wait for the next event-loop iteration', async () => {
  const scheduler = new TurnScheduler(4);
  const ran: number[] = [];
  for (let i = 0; i < 6; i++) scheduler.enqueue(() => (busy(3), ran.push(i)));
  // our own immediate, queued after the scheduler's: I/O and other callbacks get in between rounds
  await nextIteration();
  assert.equal(ran, [0, 1], 'a round stops once its 4 ms are spent');
  assert.is(scheduler.waiting, 4);
  await nextIteration();
  assert.equal(ran, [0, 1, 2, 3]);
  await nextIteration();
  assert.equal(ran, [0, 1, 2, 3, 4, 5]);
  assert.is(scheduler.waiting, 0);
});

test('a turn that asks for another goes behind those already waiting; a slow turn still runs alone', async () => {
  const scheduler = new TurnScheduler(1);
  const ran: string[] = [];
  scheduler.enqueue(() => {
    ran.push('a1');
    scheduler.enqueue(() => ran.push('a2'));
  });
  scheduler.enqueue(() => ran.push('b'));
  scheduler.enqueue(() => (busy(5), ran.push('slow')));
  for (let i = 0; i < 4 && scheduler.waiting > 0; i++) await nextIteration();
  assert.equal(ran, ['a1', 'b', 'slow', 'a2'], 'a2, asked for during the first round, runs in a later one');
});

test.run();

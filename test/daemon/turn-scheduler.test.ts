import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TurnScheduler } from '../../src/daemon/turn-scheduler.js';

const nextIteration = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A scheduler on a fake clock; `spend(ms)` inside a turn stands for the work it does. */
function fakeClock(budgetMs: number, directBudgetMs = 4) {
  let t = 0;
  return { scheduler: new TurnScheduler(budgetMs, directBudgetMs, () => t), spend: (ms: number) => void (t += ms) };
}

test('turns run round-robin within the round budget; the rest wait for the next event-loop iteration', async () => {
  const { scheduler, spend } = fakeClock(4);
  const ran: number[] = [];
  for (let i = 0; i < 6; i++) scheduler.enqueue(() => (spend(3), ran.push(i)));
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

test('a turn asked for during a round runs in a later one; a slow turn still runs alone; urgent turns go first', async () => {
  const { scheduler, spend } = fakeClock(1);
  const ran: string[] = [];
  scheduler.enqueue(() => {
    ran.push('a1');
    scheduler.enqueue(() => ran.push('a2'));
  });
  scheduler.enqueue(() => ran.push('b'));
  scheduler.enqueue(() => (spend(5), ran.push('slow')));
  scheduler.enqueue(() => ran.push('quiet client'), true);
  for (let i = 0; i < 4 && scheduler.waiting > 0; i++) await nextIteration();
  assert.equal(ran, ['quiet client', 'a1', 'b', 'slow', 'a2']);
});

test('direct handling has a budget per event-loop iteration, renewed in the next one', async () => {
  const { scheduler } = fakeClock(4, 4);
  assert.ok(scheduler.directAllowed());
  scheduler.chargeDirect(3);
  assert.ok(scheduler.directAllowed());
  scheduler.chargeDirect(2);
  assert.not.ok(scheduler.directAllowed(), 'spent for this iteration');
  await nextIteration();
  assert.ok(scheduler.directAllowed(), 'renewed');
});

test.run();

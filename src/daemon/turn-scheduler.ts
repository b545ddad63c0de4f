/**
 * Shares the event loop between connections that have work queued. Each such connection asks for a turn; once
 * per loop iteration (setImmediate, after I/O has been polled) turns run round-robin until ROUND_BUDGET_MS is
 * spent, and the rest wait for the next iteration. So however many connections flood, the poll phase (accepts,
 * a quiet client's frames) comes round at least every budget plus one turn.
 */
import { performance } from 'node:perf_hooks';

/** Time the queued turns of all connections may take per event-loop iteration. */
export const ROUND_BUDGET_MS = 4;

export class TurnScheduler {
  private turns: Array<() => void> = [];
  private head = 0;
  private scheduled = false;
  private readonly roundBound = (): void => this.round();

  constructor(private readonly budgetMs = ROUND_BUDGET_MS) {}

  /** Turns waiting for a round. */
  get waiting(): number {
    return this.turns.length - this.head;
  }

  /** Runs `turn` in a later round, after those already waiting. */
  enqueue(turn: () => void): void {
    this.turns.push(turn);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.roundBound);
    }
  }

  private round(): void {
    // Only the turns waiting when the round starts: one asked for during the round runs in the next one, so each
    // connection gets at most one turn per round, and the microtasks of a turn (an op's answer) run before its
    // connection's next turn. `scheduled` stays true meanwhile, so no second round is queued.
    const end = this.turns.length;
    const started = performance.now();
    // at least one turn per round, so a single slow turn cannot stall the others forever
    do {
      const turn = this.turns[this.head]!;
      this.turns[this.head++] = noop;
      turn();
    } while (this.head < end && performance.now() - started < this.budgetMs);
    this.turns = this.turns.slice(this.head);
    this.head = 0;
    if (this.turns.length > 0) setImmediate(this.roundBound);
    else this.scheduled = false;
  }
}

const noop = (): void => undefined;

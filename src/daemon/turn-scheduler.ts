/**
 * Shares the event loop between connections. A connection whose frames cannot all be handled as they arrive asks
 * for a turn; once per loop iteration (setImmediate, after I/O has been polled) turns run round-robin until
 * ROUND_BUDGET_MS is spent, and the rest wait for the next iteration. Frames handled as they arrive (in the poll
 * phase) draw on a budget of their own per iteration, so a burst of flooders cannot fill one poll phase either.
 * A connection that was idle goes ahead of those working off a backlog: a quiet client's hello or ping waits for
 * at most one round, not for every flooder's turn.
 */
import { performance } from 'node:perf_hooks';

/** Time the queued turns of all connections may take per event-loop iteration. */
export const ROUND_BUDGET_MS = 1;
/** Time frames may be handled as they arrive, all connections together, per event-loop iteration. */
export const DIRECT_BUDGET_MS = 2;

export class TurnScheduler {
  private urgent: Array<() => void> = [];
  private turns: Array<() => void> = [];
  private scheduled = false;
  private directSpentMs = 0;
  private directResetScheduled = false;
  private readonly roundBound = (): void => this.round();
  private readonly resetDirectBound = (): void => {
    this.directSpentMs = 0;
    this.directResetScheduled = false;
  };

  constructor(
    private readonly budgetMs = ROUND_BUDGET_MS,
    private readonly directBudgetMs = DIRECT_BUDGET_MS,
    /** ms, monotonic; injectable so tests need no busy loops. The pumps measure their turns with it too. */
    readonly now: () => number = () => performance.now(),
  ) {}

  /** Turns waiting for a round. */
  get waiting(): number {
    return this.urgent.length + this.turns.length;
  }

  /** Runs `turn` in a later round, after those already waiting; an `urgent` one (its connection was idle) first. */
  enqueue(turn: () => void, urgent = false): void {
    (urgent ? this.urgent : this.turns).push(turn);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.roundBound);
    }
  }

  /** Whether frames may still be handled as they arrive in this iteration. */
  directAllowed(): boolean {
    return this.directSpentMs < this.directBudgetMs;
  }

  /** Counts time spent handling frames as they arrived; the count starts again next iteration. */
  chargeDirect(ms: number): void {
    this.directSpentMs += ms;
    if (!this.directResetScheduled) {
      this.directResetScheduled = true;
      setImmediate(this.resetDirectBound);
    }
  }

  private round(): void {
    // Only the turns waiting when the round starts: one asked for during the round runs in the next one, so each
    // connection gets at most one turn per round, and the microtasks of a turn (an op's answer) run before its
    // connection's next turn. `scheduled` stays true meanwhile, so no second round is queued.
    const urgent = this.urgent;
    const turns = this.turns;
    this.urgent = [];
    this.turns = [];
    const started = this.now();
    let i = 0;
    let j = 0;
    // at least one turn per round, so a single slow turn cannot stall the others forever
    do {
      if (i < urgent.length) urgent[i++]!();
      else turns[j++]!();
    } while (i + j < urgent.length + turns.length && this.now() - started < this.budgetMs);
    // what did not fit goes first next round, in the same order
    this.urgent = i < urgent.length ? [...urgent.slice(i), ...this.urgent] : this.urgent;
    this.turns = j < turns.length ? [...turns.slice(j), ...this.turns] : this.turns;
    if (this.waiting > 0) setImmediate(this.roundBound);
    else this.scheduled = false;
  }
}

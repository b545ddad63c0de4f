/**
 * Fair reading for one connection. A turn handles at most FRAMES_PER_TURN frames, TURN_BUDGET_MS, or one op that
 * answers asynchronously (one may cost milliseconds: a page of session.list); what is left waits for another turn
 * from the daemon's TurnScheduler, so a flooding connection cannot hold the loop while others wait for their
 * greeting or their ping. While bodies are queued, or the connection is over a bound (requests in flight, unsent
 * output), its socket stays paused: TCP backpressure reaches the client, and its further requests are neither
 * read nor decoded.
 *
 * The common case costs no queue: bodies are handled as the splitter finds them in a chunk, and only those left
 * when the turn ends, or behind one that cannot run at once, are queued.
 */
import { TurnScheduler } from './turn-scheduler.js';

/** Frames one connection may handle before other connections get a turn. */
export const FRAMES_PER_TURN = 256;
/** Time one connection may spend in a turn, whatever its frame count (an expensive op or a slow decode). */
export const TURN_BUDGET_MS = 2;

/**
 * How the host handled one body. `hold`: it cannot run now (no in-flight slot); it stays first in the queue and is
 * offered again after `kick()`. `async`: it started a handler; the turn ends, so the answer (often a microtask
 * away) is written before the next body is checked against the output bound.
 */
export type Handled = 'done' | 'async' | 'hold';

export interface ReadPumpHost {
  handle(body: Buffer): Handled;
  /** True while reading must wait (unsent output over the bound); the host calls `kick()` once it clears. */
  blocked(): boolean;
  /** The splitter's fatal error, delivered after the frames that preceded it were handled. */
  fatal(err: unknown): void;
  pause(): void;
  resume(): void;
}

/** Cuts a chunk into frame bodies, calling onBody for each; throws on a fatal length after the bodies before it. */
export type Split = (chunk: Buffer, onBody: (body: Buffer) => void) => void;

type PumpState = 'idle' | 'running' | 'yielded' | 'waiting' | 'stopped';

export class ReadPump {
  private queue: Buffer[] = [];
  private head = 0;
  private fatalError: unknown = null;
  private state: PumpState = 'idle';
  /** Whether this pump paused the socket: pausing costs a syscall pair, so a chunk handled at once never does. */
  private paused = false;
  private turnStarted = 0;
  private turnHandled = 0;
  /** Why handling a chunk directly stopped before its end. */
  private stoppedOn: 'turn' | 'other' | null = null;
  private readonly runBound = (): void => this.run();
  private readonly enqueueBound = (body: Buffer): void => void this.queue.push(body);
  private readonly directBound = (body: Buffer): void => this.direct(body);

  /** `scheduler` shares the loop with the daemon's other connections; a pump of its own when alone (tests). */
  constructor(
    private readonly host: ReadPumpHost,
    private readonly scheduler: TurnScheduler = new TurnScheduler(),
  ) {}

  /** Bodies not yet handled. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /**
   * One chunk from the socket. Bodies may share memory with the chunk: safe, since the socket is paused (no next
   * chunk) while any is queued.
   */
  feed(chunk: Buffer, split: Split): void {
    if (this.state === 'stopped') return;
    if (this.state !== 'idle') {
      // a turn is pending or waiting: this chunk goes behind the queue
      this.split(chunk, split, this.enqueueBound);
      return;
    }
    if (!this.scheduler.directAllowed()) {
      // this iteration's poll phase has had its share: a turn in the next round, ahead of the backlogs
      this.split(chunk, split, this.enqueueBound);
      this.pause();
      this.state = 'yielded';
      this.scheduler.enqueue(this.runBound, true);
      return;
    }
    this.state = 'running';
    this.startTurn();
    this.stoppedOn = null;
    this.split(chunk, split, this.directBound);
    this.scheduler.chargeDirect(this.scheduler.now() - this.turnStarted);
    if ((this.state as PumpState) === 'stopped') return;
    const left = this.head < this.queue.length;
    // an async op as the chunk's last frame leaves nothing to yield for: no pause, no turn
    if (left && this.stoppedOn === 'turn') this.yieldTurn();
    else if (left || this.fatalError !== null || this.host.blocked()) this.run();
    else this.state = 'idle';
  }

  /** Handles again, in a turn, once a bound cleared (output drained, an in-flight slot freed). */
  kick(): void {
    if (this.state === 'waiting') this.yieldTurn();
  }

  /** Drops what is queued; nothing more is handled. */
  stop(): void {
    this.state = 'stopped';
    this.queue = [];
    this.head = 0;
  }

  private split(chunk: Buffer, split: Split, onBody: (body: Buffer) => void): void {
    try {
      split(chunk, onBody);
    } catch (err) {
      this.fatalError ??= err;
    }
  }

  private direct(body: Buffer): void {
    if (this.stoppedOn !== null) {
      this.queue.push(body);
      return;
    }
    if (!this.mayHandle()) {
      this.stoppedOn = this.host.blocked() ? 'other' : 'turn';
      this.queue.push(body);
      return;
    }
    this.turnHandled++;
    const outcome = this.host.handle(body);
    if (outcome === 'hold') {
      this.stoppedOn = 'other';
      this.queue.push(body);
    } else if (outcome === 'async') this.stoppedOn = 'turn';
  }

  private startTurn(): void {
    this.turnStarted = this.scheduler.now();
    this.turnHandled = 0;
  }

  /** Within the turn's budget and not blocked. The clock is read every 16 frames: per frame it costs a ping a tenth of its time. */
  private mayHandle(): boolean {
    const n = this.turnHandled;
    if (n >= FRAMES_PER_TURN || ((n & 15) === 15 && this.scheduler.now() - this.turnStarted >= TURN_BUDGET_MS)) return false;
    return !this.host.blocked();
  }

  private yieldTurn(): void {
    this.pause();
    this.state = 'yielded';
    this.scheduler.enqueue(this.runBound);
  }

  /** One turn over the queued bodies; then another turn is asked for, or reading resumes once the queue is empty. */
  private run(): void {
    if (this.state === 'stopped') return;
    if (this.state !== 'running') this.startTurn();
    this.state = 'running';
    while (this.head < this.queue.length) {
      if (!this.mayHandle()) return this.host.blocked() ? this.wait() : this.yieldTurn();
      this.turnHandled++;
      const outcome = this.host.handle(this.queue[this.head]!);
      if (outcome === 'hold') return this.wait();
      this.head++;
      if (outcome === 'async' && this.head < this.queue.length) return this.yieldTurn();
    }
    // the host closed the connection while handling (a fatal frame, a refused hello)
    if ((this.state as PumpState) === 'stopped') return;
    this.queue = [];
    this.head = 0;
    if (this.fatalError !== null) {
      this.state = 'stopped';
      this.host.fatal(this.fatalError);
      return;
    }
    // output may still be over its bound with nothing queued: stay paused until it drains
    if (this.host.blocked()) return this.wait();
    this.state = 'idle';
    if (this.paused) {
      this.paused = false;
      this.host.resume();
    }
  }

  private wait(): void {
    this.pause();
    this.state = 'waiting';
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.host.pause();
  }
}

/**
 * Fair reading for one connection. Frame bodies split from the socket are queued and handled at most
 * FRAMES_PER_TURN (or TURN_BUDGET_MS) at a time; then the connection yields to the event loop with setImmediate,
 * so a flooding connection cannot hold the loop while others wait for their greeting or their ping. While bodies
 * are queued, or the connection is over a bound (requests in flight, unsent output), its socket stays paused: TCP
 * backpressure reaches the client, and its further requests are neither read nor decoded.
 */
import { performance } from 'node:perf_hooks';

/** Frames one connection may handle before other connections get a turn. */
export const FRAMES_PER_TURN = 64;
/** Time one connection may spend in a turn, whatever its frame count (an expensive op or a slow decode). */
export const TURN_BUDGET_MS = 2;

/**
 * How the host handled one body. `hold`: it cannot run now (no in-flight slot); it stays first in the queue and is
 * offered again after `kick()`. `async`: it started a handler that may answer within microtasks; they run before
 * the next body, so its answer counts toward the output bound the next body is checked against.
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

type PumpState = 'idle' | 'running' | 'yielded' | 'waiting' | 'stopped';

export class ReadPump {
  private queue: Buffer[] = [];
  private head = 0;
  private fatalError: unknown = null;
  private state: PumpState = 'idle';
  private readonly runBound = (): void => void this.run();

  constructor(private readonly host: ReadPumpHost) {}

  /** Bodies not yet handled. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Bodies may share memory with the chunk they came in: safe, since no chunk is read while any is queued. */
  add(body: Buffer): void {
    if (this.state !== 'stopped') this.queue.push(body);
  }

  /** A fatal input error: handled after the bodies queued before it. */
  failAfterQueue(err: unknown): void {
    this.fatalError ??= err;
  }

  /** Starts handling after new input, or again once a bound cleared (output drained, an in-flight slot freed). */
  kick(): void {
    if (this.state === 'idle' || this.state === 'waiting') void this.run();
  }

  /** Drops what is queued; nothing more is handled. */
  stop(): void {
    this.state = 'stopped';
    this.queue = [];
    this.head = 0;
  }

  private async run(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'running';
    this.host.pause();
    const started = performance.now();
    for (let handled = 0; this.head < this.queue.length; handled++) {
      if (this.host.blocked()) return this.wait();
      if (handled >= FRAMES_PER_TURN || performance.now() - started >= TURN_BUDGET_MS) {
        this.state = 'yielded';
        setImmediate(this.runBound);
        return;
      }
      const outcome = this.host.handle(this.queue[this.head]!);
      if (outcome === 'hold') return this.wait();
      this.head++;
      if (outcome === 'async') {
        await null;
        // a close during the await stops the pump
        if ((this.state as PumpState) === 'stopped') return;
      }
    }
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
    this.host.resume();
  }

  private wait(): void {
    this.state = 'waiting';
  }
}

/**
 * One request in flight on the client: its status frames (as a callback or an async iterator) and its
 * terminal result or error. The client owns the in-flight table; a Call only holds the request's own state.
 */
import { EdgeechoError } from '../../protocol/errors.js';
import type { RequestId, StatusFrame } from '../../protocol/messages.js';

export class Call<T = unknown> {
  readonly id: RequestId;
  readonly op: string;
  /** Settles with the result frame's `data`, or rejects with an EdgeechoError carrying the wire code. */
  readonly result: Promise<T>;
  /** True once `result` has settled; later frames for this id are ignored. */
  settled = false;

  private resolveResult!: (data: T) => void;
  private rejectResult!: (err: EdgeechoError) => void;
  private readonly onStatus: ((frame: StatusFrame) => void) | undefined;
  private readonly cancelHook: (reason: EdgeechoError) => void;
  private queue: StatusFrame[] | null = null;
  private wake: (() => void) | null = null;
  private cleanups: Array<() => void> = [];

  /** @internal built by Client.call */
  constructor(id: RequestId, op: string, onStatus: ((frame: StatusFrame) => void) | undefined, cancelHook: (reason: EdgeechoError) => void) {
    this.id = id;
    this.op = op;
    this.onStatus = onStatus;
    this.cancelHook = cancelHook;
    this.result = new Promise<T>((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    // A caller that only iterates `status` must not crash the process with an unhandled rejection;
    // awaiting `result` still throws.
    this.result.catch(() => {});
  }

  /**
   * Status frames in arrival order; iteration ends when the request settles (read `result` for the outcome).
   * Frames are kept from the moment this getter is first read, so read it before the first await.
   * One consumer at a time.
   */
  get status(): AsyncIterable<StatusFrame> {
    this.queue ??= [];
    return { [Symbol.asyncIterator]: () => this.iterate() };
  }

  /** Asks the daemon to cancel; `result` rejects at once with CANCELLED (or the given error). */
  cancel(reason?: EdgeechoError): void {
    if (this.settled) return;
    this.cancelHook(reason ?? new EdgeechoError('CANCELLED', `request ${String(this.id)} (${this.op}) was cancelled by the client`));
  }

  /** @internal */
  addCleanup(fn: () => void): void {
    if (this.settled) fn();
    else this.cleanups.push(fn);
  }

  /** @internal */
  pushStatus(frame: StatusFrame): void {
    if (this.settled) return;
    if (this.onStatus) {
      try {
        this.onStatus(frame);
      } catch {
        // A throwing listener must not break frame dispatch for the other requests on this connection.
      }
    }
    if (this.queue) {
      this.queue.push(frame);
      this.notify();
    }
  }

  /** @internal */
  resolve(data: T): void {
    if (this.finish()) this.resolveResult(data);
  }

  /** @internal */
  reject(err: EdgeechoError): void {
    if (this.finish()) this.rejectResult(err);
  }

  private finish(): boolean {
    if (this.settled) return false;
    this.settled = true;
    const cleanups = this.cleanups;
    this.cleanups = [];
    for (const fn of cleanups) fn();
    this.notify();
    return true;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async *iterate(): AsyncGenerator<StatusFrame, void, undefined> {
    const queue = (this.queue ??= []);
    try {
      for (;;) {
        if (queue.length > 0) {
          yield queue.shift()!;
          continue;
        }
        if (this.settled) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      // A consumer that stops early stops the buffering too.
      if (this.queue === queue) this.queue = null;
    }
  }
}

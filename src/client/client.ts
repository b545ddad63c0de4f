/**
 * The client side of a connection: greeting, protocol choice, hello, then requests matched to answers through
 * one in-flight table keyed by id (as ioredis matches replies in one place). Speaks over any connected Duplex,
 * so TCP, unix sockets, TLS and test doubles all go through the same code.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { FrameDecoder, FrameWriter } from '../../protocol/codec.js';
import { EdgeechoError, type WireError } from '../../protocol/errors.js';
import { chooseProtocol, describe, SUPPORTED_PROTOCOLS, type EventFrame, type Greeting, type RequestId, type StatusFrame } from '../../protocol/messages.js';
import { Call } from './call.js';
import { createTlsSocketFactory, type ClientTlsOptions } from './tls.js';
import { createNetSocket, DEFAULT_CONNECT_TIMEOUT_MS, describeTarget, type ConnectTarget, type CreateSocket } from './transport.js';

/** Below the daemon's default idle timeout (120 s) with room for one lost ping. */
export const DEFAULT_KEEPALIVE_MS = 30_000;
/** Largest frame accepted from the daemon; results (e.g. session lists) may exceed what it accepts from us. */
export const DEFAULT_CLIENT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
export const DEFAULT_CLIENT_NAME = 'edgeecho-client';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // The socket keeps the process alive while it is open; timers alone must not.
    t.unref?.();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  now: () => Date.now(),
};

export interface ConnectOptions {
  /** TCP host (default 127.0.0.1) and port; or `path` for a unix socket. */
  host?: string;
  port?: number;
  path?: string;
  /** Sent in hello when the daemon requires a token. */
  token?: string;
  /** Name sent in hello, shown in the daemon's logs. */
  client?: string;
  /** Bound on connecting, greeting and hello together (default 10000). */
  connectTimeoutMs?: number;
  /** Ping after this long without sending anything, so the daemon's idle timeout does not close us (0: off). */
  keepaliveMs?: number;
  maxFrame?: number;
  /** Send hello after the greeting (default true). */
  hello?: boolean;
  /** Versions this client may speak (default: all this build supports). */
  protocols?: readonly number[];
  /** Opens the byte stream; the seam for TLS and tests. Default: plain TCP or unix socket. */
  createSocket?: CreateSocket;
  /** TLS to the daemon's TCP port: true trusts the system store, {ca} a given CA. Ignored when createSocket is set. */
  tls?: boolean | ClientTlsOptions;
  timers?: Timers;
}

export interface RequestOptions {
  signal?: AbortSignal;
  onStatus?: (frame: StatusFrame) => void;
  /** Cancels the request and rejects with TIMEOUT after this long (default: none). */
  timeoutMs?: number;
}

export function targetOf(options: ConnectOptions): ConnectTarget {
  if (options.path) return { path: options.path };
  if (options.port === undefined || !Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
    throw new EdgeechoError('BAD_REQUEST', `connect options: expected {path} or {host?, port} with port 1..65535, got port ${String(options.port)}`);
  }
  return { host: options.host ?? '127.0.0.1', port: options.port };
}

/**
 * Connects, waits for the greeting, checks the protocol and sends hello. Rejects with an EdgeechoError:
 * CONNECTION_CLOSED (refused, closed), TIMEOUT, UNSUPPORTED_PROTOCOL or the daemon's own hello error.
 */
export async function connect(options: ConnectOptions): Promise<Client> {
  const target = targetOf(options);
  const timers = options.timers ?? realTimers;
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const abort = new AbortController();
  const timer = timers.setTimeout(() => {
    abort.abort(
      new EdgeechoError('TIMEOUT', `no greeting and hello from ${describeTarget(target)} within ${timeoutMs} ms (connectTimeoutMs)`, {
        target: describeTarget(target),
        timeout_ms: timeoutMs,
      }),
    );
  }, timeoutMs);
  let client: Client | undefined;
  try {
    const createSocket = options.createSocket ?? (options.tls ? createTlsSocketFactory(options.tls === true ? {} : options.tls) : createNetSocket);
    const socket = await createSocket({ target, signal: abort.signal });
    client = new Client(socket, { ...options, timers }, describeTarget(target));
    await client.handshake(abort.signal);
    client.startKeepalive();
    return client;
  } catch (err) {
    const error = EdgeechoError.from(err);
    client?.destroy(error);
    throw error;
  } finally {
    timers.clearTimeout(timer);
  }
}

type ClientEvents = {
  event: [EventFrame];
  /** The connection ended; `error` says why (absent after close()). */
  close: [EdgeechoError | undefined];
  /** Frames that answer no request of ours: error frames with id null, undecodable frames, unknown ids. */
  unmatched: [unknown, EdgeechoError | undefined];
};

export class Client extends EventEmitter<ClientEvents> {
  readonly peer: string;
  greeting: Greeting | null = null;
  /** The protocol version agreed in hello. */
  protocol: number | null = null;
  /** What the daemon answered to hello. */
  helloResult: Record<string, unknown> | null = null;

  private readonly socket: Duplex;
  private readonly decoder: FrameDecoder;
  private readonly writer: FrameWriter;
  private readonly options: ConnectOptions & { timers: Timers };
  private readonly timers: Timers;
  private readonly inflight = new Map<RequestId, Call<any>>();
  private nextId = 1;
  private closedWith: EdgeechoError | null = null;
  private onGreeting: ((greeting: Greeting | EdgeechoError) => void) | null = null;
  private lastSentAt: number;
  private keepaliveTimer: unknown = null;
  private closedPromise: Promise<void>;

  /** @internal use connect() */
  constructor(socket: Duplex, options: ConnectOptions & { timers: Timers }, peer: string) {
    super();
    this.socket = socket;
    this.options = options;
    this.timers = options.timers;
    this.peer = peer;
    this.decoder = new FrameDecoder(options.maxFrame ?? DEFAULT_CLIENT_MAX_FRAME_BYTES);
    this.writer = new FrameWriter(socket);
    this.lastSentAt = this.timers.now();
    this.closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => this.fail(new EdgeechoError('CONNECTION_CLOSED', `connection to ${peer} failed: ${err.message}`, undefined, { cause: err })));
    socket.on('close', () => this.fail(new EdgeechoError('CONNECTION_CLOSED', `connection to ${peer} closed by the daemon`)));
    socket.on('end', () => socket.end());
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  /** Requests sent and not yet answered. */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /** False while the socket refuses writes; `drained()` resolves when it takes more. */
  get writable(): boolean {
    return this.writer.writable;
  }

  /** Bytes encoded and not yet taken by the kernel; requests beyond the socket's appetite wait unencoded. */
  get bufferedBytes(): number {
    return this.writer.bufferedBytes;
  }

  drained(): Promise<void> {
    return this.writer.drained();
  }

  /** @internal */
  async handshake(signal: AbortSignal): Promise<void> {
    const greeting = await new Promise<Greeting>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      this.onGreeting = (g) => {
        signal.removeEventListener('abort', onAbort);
        if (g instanceof EdgeechoError) reject(g);
        else resolve(g);
      };
      if (this.closedWith) this.onGreeting(this.closedWith);
    });
    const ours = this.options.protocols ?? SUPPORTED_PROTOCOLS;
    const protocol = chooseProtocol(greeting, ours);
    if (protocol === null) {
      throw new EdgeechoError(
        'UNSUPPORTED_PROTOCOL',
        `daemon at ${this.peer} speaks protocol versions [${(greeting.protocols ?? [greeting.protocol]).join(', ')}], this client speaks [${ours.join(', ')}]`,
        { server: greeting.protocols, client: [...ours] },
      );
    }
    this.protocol = protocol;
    if (this.options.hello === false) return;
    const args: Record<string, unknown> = { client: this.options.client ?? DEFAULT_CLIENT_NAME, protocol };
    if (this.options.token !== undefined) args.token = this.options.token;
    const result = await this.request<Record<string, unknown>>('hello', args, { signal });
    this.helloResult = result ?? {};
    if (typeof result?.protocol === 'number') this.protocol = result.protocol;
  }

  /**
   * Sends a request and returns its handle: `call.status` iterates status frames, `call.result` settles with
   * the result data or rejects with an EdgeechoError. Aborting `signal` sends `cancel {target}` and rejects
   * at once with CANCELLED; `timeoutMs` does the same with TIMEOUT.
   */
  call<T = unknown>(op: string, args?: Record<string, unknown>, options: RequestOptions = {}): Call<T> {
    const id = this.nextId++;
    let sent = false;
    const call = new Call<T>(id, op, options.onStatus, (reason) => {
      if (sent && !this.closedWith) this.sendCancel(id);
      this.inflight.delete(id);
      call.reject(reason);
    });
    if (this.closedWith) {
      call.reject(this.closedWith);
      return call;
    }
    this.inflight.set(id, call);
    const { signal, timeoutMs } = options;
    if (signal) {
      const onAbort = (): void => call.cancel(cancelReason(signal.reason, id, op));
      if (signal.aborted) {
        onAbort();
        return call;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      call.addCleanup(() => signal.removeEventListener('abort', onAbort));
    }
    if (timeoutMs !== undefined) {
      const timer = this.timers.setTimeout(
        () => call.cancel(new EdgeechoError('TIMEOUT', `request ${id} (${op}) got no answer within ${timeoutMs} ms (timeoutMs)`, { id, op, timeout_ms: timeoutMs })),
        timeoutMs,
      );
      call.addCleanup(() => this.timers.clearTimeout(timer));
    }
    const frame: Record<string, unknown> = { id, op };
    if (args !== undefined) frame.args = args;
    const send = (): void => {
      if (call.settled || this.closedWith) return;
      sent = true;
      this.send(frame);
    };
    // Requests wait for the socket to drain instead of piling up unbounded in memory.
    if (this.writer.writable) send();
    else void this.writer.drained().then(send);
    return call;
  }

  /** Sends a request and resolves with its result data; see call(). */
  request<T = unknown>(op: string, args?: Record<string, unknown>, options: RequestOptions = {}): Promise<T> {
    return this.call<T>(op, args, options).result;
  }

  /**
   * Yields status frames and returns the result data; throws the request's error. Leaving the loop early
   * cancels the request.
   */
  async *stream<T = unknown>(op: string, args?: Record<string, unknown>, options: RequestOptions = {}): AsyncGenerator<StatusFrame, T, undefined> {
    const call = this.call<T>(op, args, options);
    try {
      for await (const status of call.status) yield status;
      return await call.result;
    } finally {
      call.cancel();
    }
  }

  /** Event frames, optionally of one topic, until the connection closes. */
  events(topic?: string): AsyncIterable<EventFrame> {
    const client = this;
    return {
      async *[Symbol.asyncIterator]() {
        const queue: EventFrame[] = [];
        let wake: (() => void) | null = null;
        const onEvent = (frame: EventFrame): void => {
          if (topic !== undefined && frame.topic !== topic) return;
          queue.push(frame);
          wake?.();
        };
        const onClose = (): void => wake?.();
        client.on('event', onEvent);
        client.on('close', onClose);
        try {
          for (;;) {
            if (queue.length) yield queue.shift()!;
            else if (client.closed) return;
            else await new Promise<void>((resolve) => (wake = resolve));
          }
        } finally {
          client.off('event', onEvent);
          client.off('close', onClose);
        }
      },
    };
  }

  /** Ends the connection after sending what is queued; requests still in flight reject with CONNECTION_CLOSED. */
  async close(): Promise<void> {
    if (!this.closedWith) {
      this.fail(new EdgeechoError('CONNECTION_CLOSED', `connection to ${this.peer} closed by the client`), true);
      this.writer.flush();
      this.socket.end();
      const force = this.timers.setTimeout(() => this.socket.destroy(), 2_000);
      await this.closedPromise;
      this.timers.clearTimeout(force);
      return;
    }
    await this.closedPromise;
  }

  /** Drops the connection at once. */
  destroy(error?: EdgeechoError): void {
    this.fail(error ?? new EdgeechoError('CONNECTION_CLOSED', `connection to ${this.peer} destroyed by the client`));
    this.socket.destroy();
  }

  /** @internal */
  startKeepalive(): void {
    const interval = this.options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
    if (interval <= 0 || this.closedWith) return;
    const tick = (): void => {
      this.keepaliveTimer = null;
      if (this.closedWith) return;
      const idle = this.timers.now() - this.lastSentAt;
      if (idle < interval) {
        this.keepaliveTimer = this.timers.setTimeout(tick, interval - idle);
        return;
      }
      this.request('ping', undefined, { timeoutMs: interval }).catch((err: EdgeechoError) => {
        if (err.code === 'TIMEOUT') {
          this.destroy(new EdgeechoError('TIMEOUT', `keepalive ping to ${this.peer} unanswered within ${interval} ms (keepaliveMs)`, { keepalive_ms: interval }));
        }
      });
      this.keepaliveTimer = this.timers.setTimeout(tick, interval);
    };
    this.keepaliveTimer = this.timers.setTimeout(tick, interval);
  }

  private send(frame: Record<string, unknown>): void {
    this.lastSentAt = this.timers.now();
    this.writer.send(frame);
  }

  private sendCancel(target: RequestId): void {
    const id = this.nextId++;
    // The cancel's own answer matters to no one; keeping it out of the table keeps close() quiet.
    this.send({ id, op: 'cancel', args: { target } });
  }

  private onData(chunk: Buffer): void {
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.destroy(EdgeechoError.from(err));
      return;
    }
    for (const frame of frames) {
      if (frame.ok) this.dispatch(frame.value);
      else this.emit('unmatched', frame.body, frame.error);
    }
  }

  private dispatch(value: unknown): void {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.emit('unmatched', value, new EdgeechoError('BAD_FRAME', 'daemon sent a frame that is not a map'));
      return;
    }
    const frame = value as Record<string, unknown>;
    if (this.onGreeting) {
      const deliver = this.onGreeting;
      if (frame.kind === 'hello') {
        this.onGreeting = null;
        this.greeting = frame as unknown as Greeting;
        deliver(this.greeting);
      } else if (frame.kind === 'error') {
        // Refusals before the greeting (connection limit, shutting down) come as an error frame with id null.
        this.onGreeting = null;
        deliver(wireErrorOf(frame));
      } else {
        this.emit('unmatched', frame, new EdgeechoError('BAD_FRAME', `expected the greeting first, got kind ${String(frame.kind)}`));
      }
      return;
    }
    if (frame.kind === 'event') {
      this.emit('event', frame as unknown as EventFrame);
      return;
    }
    const call = this.inflight.get(frame.id as RequestId);
    if (!call) {
      const error = frame.kind === 'error' ? wireErrorOf(frame) : undefined;
      this.emit('unmatched', frame, error);
      return;
    }
    switch (frame.kind) {
      case 'status':
        call.pushStatus(frame as StatusFrame);
        break;
      case 'result':
        this.inflight.delete(call.id);
        call.resolve(frame.data);
        break;
      case 'error':
        this.inflight.delete(call.id);
        call.reject(wireErrorOf(frame));
        break;
      default:
        this.emit('unmatched', frame, new EdgeechoError('BAD_FRAME', `unknown frame kind ${String(frame.kind)} for request ${String(call.id)}`));
    }
  }

  private fail(error: EdgeechoError, byClient = false): void {
    if (this.closedWith) return;
    this.closedWith = error;
    if (this.keepaliveTimer !== null) this.timers.clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = null;
    const pending = [...this.inflight.values()];
    this.inflight.clear();
    for (const call of pending) call.reject(error);
    if (this.onGreeting) {
      const deliver = this.onGreeting;
      this.onGreeting = null;
      deliver(error);
    }
    void this.closedPromise.then(() => this.emit('close', byClient ? undefined : error));
  }
}

/** The error an error frame carries; a malformed one must not throw out of the socket's data listener. */
function wireErrorOf(frame: Record<string, unknown>): EdgeechoError {
  const wire = frame.error as Partial<WireError> | null | undefined;
  if (wire !== null && typeof wire === 'object' && typeof wire.code === 'string' && typeof wire.message === 'string') {
    return EdgeechoError.fromWire(wire as WireError);
  }
  return new EdgeechoError('BAD_FRAME', `expected an error frame's error to be a map {code, message}, got ${describe(wire)}`);
}

function cancelReason(reason: unknown, id: RequestId, op: string): EdgeechoError {
  if (reason instanceof EdgeechoError) return reason;
  const text = reason instanceof Error ? `: ${reason.message}` : '';
  return new EdgeechoError('CANCELLED', `request ${String(id)} (${op}) was aborted by its signal${text}`, { id, op }, { cause: reason });
}

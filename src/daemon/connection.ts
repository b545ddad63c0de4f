/**
 * One client connection: greeting first, then frames in and out. Holds the hello gate (until hello succeeds
 * only hello and ping run) and the in-flight table keyed by request id, the one place where answers are matched
 * to requests. Limits enforced here: handshake and idle timeouts, max frame, and two bounds that stop reading
 * (read-pump.ts): max in-flight, and output the socket has not taken. Output that does not drain within the
 * stall timeout, or that passes the write-buffer bound, disconnects the client: it stopped reading.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { FrameSplitter, FrameWriter, packValue, unpackValue } from '../../protocol/codec.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { parseRequest, type Request, type RequestId } from '../../protocol/messages.js';
import { CORE_OPS, helloProtocol, pingResult, type CoreControl, type HelloArgs, type HelloResult } from './core-ops.js';
import { validateArgs, type OpContext, type OpDefinition, type OpRegistry } from '../ops/contract.js';
import type { Peer } from './listen.js';
import type { DaemonStats, DisconnectReason } from './daemon-stats.js';
import { ReadPump, type Handled } from './read-pump.js';
import type { TurnScheduler } from './turn-scheduler.js';

export interface ConnectionLimits {
  maxFrame: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  maxInflight: number;
  maxWriteBuffer: number;
  /** Output that has not drained for this long (reading paused meanwhile) disconnects the client. */
  stallTimeoutMs: number;
}

/** Timers behind an interface so tests can drive them. Every timer is cleared when its connection closes. */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: Date.now,
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Checks a hello token. false: refused, the client may retry on the same connection. Throwing (an EdgeechoError
 * keeps its code, e.g. a peer over its failure limit): the error answers the hello and the connection is closed.
 */
export type Authenticate = (token: string | undefined, peer: Peer) => Promise<boolean>;

/** What every connection of one daemon shares. */
export interface ConnectionShared {
  limits: ConnectionLimits;
  registry: OpRegistry;
  version: string;
  /** The runtime serving sessions, named in the hello result; absent when the daemon drives none. */
  runtime?: string;
  /** The daemon's instance id, answered in hello. */
  instance?: string;
  /** The greeting, encoded once. */
  greetingBody: Buffer;
  authenticate?: Authenticate;
  clock: Clock;
  /** Set when the daemon shuts down: new requests get SHUTTING_DOWN. */
  shuttingDown: boolean;
  stats: DaemonStats;
  /** Shares the event loop between connections with queued frames. */
  scheduler: TurnScheduler;
}

/** How long a closing connection may take to flush its last frames before it is destroyed. */
export const CLOSE_GRACE_MS = 2_000;
/** Fixed TCP keepalive probe delay: finds peers that vanished without a FIN. */
const TCP_KEEPALIVE_MS = 30_000;

// msgpack of a 3-entry map: "id" <id> "kind" "result" "data" <data>
const PING_PREFIX = Buffer.from([0x83, 0xa2, 0x69, 0x64]);
const PING_MIDDLE = Buffer.concat([packValue('kind'), packValue('result'), packValue('data')]);
const SMALL_INTS: Buffer[] = Array.from({ length: 128 }, (_, i) => Buffer.from([i]));
const pingCache: { time: number; data: Buffer } = { time: -1, data: Buffer.alloc(0) };

const CORE = new Map<string, OpDefinition<any>>(CORE_OPS.map((op) => [op.name, op]));

export class Connection implements CoreControl {
  readonly id: string;
  readonly peer: Peer;
  readonly log: Logger;
  client: string | undefined;
  protocol: number | undefined;
  private readonly shared: ConnectionShared;
  private readonly socket: Socket;
  private readonly splitter: FrameSplitter;
  private readonly writer: FrameWriter;
  private readonly inflight = new Map<RequestId, InflightRequest>();
  private authenticated = false;
  private helloPending = false;
  private closing = false;
  private closedFlag = false;
  private drainWait = false;
  private stallTimer: unknown = null;
  private lastActivity: number;
  private handshakeTimer: unknown = null;
  private idleTimer: unknown = null;
  private graceTimer: unknown = null;
  private emptyWaiters: Array<() => void> = [];
  private closeWaiters: Array<() => void> = [];
  private readonly onDataBound = (chunk: Buffer): void => this.onData(chunk);
  private readonly pump: ReadPump;
  private readonly splitBound = (chunk: Buffer, onBody: (body: Buffer) => void): void => this.splitter.forEachFrame(chunk, onBody);

  constructor(
    id: string,
    socket: Socket,
    peer: Peer,
    shared: ConnectionShared,
    log: Logger,
    private readonly onGone: (conn: Connection) => void,
  ) {
    this.id = id;
    this.socket = socket;
    this.peer = peer;
    this.shared = shared;
    this.log = log;
    this.splitter = new FrameSplitter(shared.limits.maxFrame);
    this.writer = new FrameWriter(socket);
    this.lastActivity = shared.clock.now();
    this.pump = new ReadPump(
      {
        handle: (body) => this.onBody(body),
        blocked: () => this.outputBlocked(),
        fatal: (err) => this.fail(EdgeechoError.from(err), 'bad_frame'),
        pause: () => socket.pause(),
        resume: () => {
          if (!this.closing) socket.resume();
        },
      },
      shared.scheduler,
    );
  }

  /** Sends the greeting and starts reading. */
  start(): void {
    const socket = this.socket;
    socket.setNoDelay?.(true);
    socket.setKeepAlive?.(true, TCP_KEEPALIVE_MS);
    socket.on('data', this.onDataBound);
    socket.on('error', (err: NodeJS.ErrnoException) => this.log.debug({ err: err.code ?? err.message }, 'socket error'));
    socket.on('close', () => this.onClose());
    this.shared.stats.framesOut++;
    this.writer.sendBody(this.shared.greetingBody);
    const clock = this.shared.clock;
    this.handshakeTimer = clock.setTimer(() => this.onHandshakeTimeout(), this.shared.limits.handshakeTimeoutMs);
    this.idleTimer = clock.setTimer(() => this.onIdleCheck(), this.shared.limits.idleTimeoutMs);
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  get isAuthenticated(): boolean {
    return this.authenticated;
  }

  /** Resolves once nothing is in flight (detached ops included, even after the socket closed). */
  whenNoInflight(): Promise<void> {
    if (this.inflight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  /** Resolves once the socket is closed. */
  whenClosed(): Promise<void> {
    if (this.closedFlag) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  /** A server-initiated event frame; dropped once the connection is closing. */
  event(topic: string, data: unknown): void {
    this.send({ kind: 'event', topic, data });
  }

  // ---- core ops (CoreControl) ----

  async hello(args: HelloArgs): Promise<HelloResult> {
    if (this.authenticated) throw new EdgeechoError('CONFLICT', 'hello already succeeded on this connection; it is sent once');
    if (this.helloPending) throw new EdgeechoError('CONFLICT', 'a hello is already in progress on this connection');
    const protocol = helloProtocol(args.protocol);
    const authenticate = this.shared.authenticate;
    if (authenticate) {
      this.helloPending = true;
      try {
        if (args.token === undefined) {
          throw new EdgeechoError('UNAUTHENTICATED', 'this daemon requires a token (greeting auth: ["token"]) and hello carried none', { auth: ['token'] });
        }
        let accepted: boolean;
        try {
          accepted = await authenticate(args.token, this.peer);
        } catch (err) {
          // the hook refused outright (e.g. too many failures from this peer): answer, then close
          this.shared.stats.authFailures++;
          this.close();
          throw err;
        }
        if (!accepted) {
          this.shared.stats.authFailures++;
          throw new EdgeechoError('UNAUTHENTICATED', 'the token in hello was refused', { auth: ['token'] });
        }
      } finally {
        this.helloPending = false;
      }
    }
    this.authenticated = true;
    this.client = args.client;
    this.protocol = protocol;
    this.shared.clock.clearTimer(this.handshakeTimer);
    this.handshakeTimer = null;
    this.log.debug({ client: args.client, protocol }, 'hello');
    return {
      server: 'edgeecho',
      version: this.shared.version,
      protocol,
      conn: this.id,
      ...(this.shared.runtime ? { runtime: this.shared.runtime } : {}),
      ...(this.shared.instance ? { instance: this.shared.instance } : {}),
    };
  }

  cancel(target: RequestId): boolean {
    const entry = this.inflight.get(target);
    if (!entry || entry.done || entry.abortedWith) return false;
    entry.abort(new EdgeechoError('CANCELLED', `request ${JSON.stringify(target)} was cancelled by the client`, { target }));
    return true;
  }

  // ---- shutdown and close ----

  /**
   * Ends every request in flight now with `reason` as its terminal frame and aborts its handler (detached ops
   * too: this is the shutdown deadline). Handlers that settle later are ignored.
   */
  abortInflight(reason: EdgeechoError): void {
    for (const entry of [...this.inflight.values()]) {
      entry.abort(reason);
      this.finish(entry, true, reason);
    }
  }

  /**
   * Stops reading, lets requests already in flight answer, flushes, then ends the socket; destroys it after
   * CLOSE_GRACE_MS if that does not happen (a handler that hangs, a peer that does not read).
   */
  close(): void {
    if (this.closing || this.closedFlag) return;
    this.closing = true;
    this.stopReading();
    this.graceTimer = this.shared.clock.setTimer(() => this.socket.destroy(), CLOSE_GRACE_MS);
    if (this.inflight.size === 0) this.endSocket();
    else void this.whenNoInflight().then(() => this.endSocket());
  }

  private endSocket(): void {
    if (!this.socket.writable) return;
    this.writer.flush();
    this.socket.end();
  }

  /** Closes at once, dropping anything unsent. */
  destroy(): void {
    this.closing = true;
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.closing = true;
    const clock = this.shared.clock;
    clock.clearTimer(this.handshakeTimer);
    clock.clearTimer(this.idleTimer);
    clock.clearTimer(this.graceTimer);
    clock.clearTimer(this.stallTimer);
    this.handshakeTimer = this.idleTimer = this.graceTimer = this.stallTimer = null;
    this.pump.stop();
    for (const entry of this.inflight.values()) {
      if (!entry.detached) entry.abort(new EdgeechoError('CANCELLED', 'the connection closed before the request finished'));
    }
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) w();
    this.onGone(this);
  }

  private stopReading(): void {
    this.socket.removeListener('data', this.onDataBound);
    this.socket.pause();
    this.pump.stop();
  }

  // ---- timers ----

  private onHandshakeTimeout(): void {
    this.handshakeTimer = null;
    if (this.authenticated || this.closing) return;
    const ms = this.shared.limits.handshakeTimeoutMs;
    this.fail(new EdgeechoError('TIMEOUT', `hello did not succeed within ${ms} ms of connecting (EDGEECHO_HANDSHAKE_TIMEOUT_MS)`, { limit_ms: ms }), 'handshake_timeout');
  }

  /** One timer per connection, re-armed from the last activity instead of reset on every frame. */
  private onIdleCheck(): void {
    this.idleTimer = null;
    if (this.closing) return;
    const limit = this.shared.limits.idleTimeoutMs;
    const clock = this.shared.clock;
    const quiet = clock.now() - this.lastActivity;
    if (this.inflight.size > 0 || quiet < limit) {
      this.idleTimer = clock.setTimer(() => this.onIdleCheck(), this.inflight.size > 0 ? limit : limit - quiet);
      return;
    }
    this.fail(
      new EdgeechoError('TIMEOUT', `no frame for ${quiet} ms with nothing in flight; idle limit is ${limit} ms (EDGEECHO_IDLE_TIMEOUT_MS); send ping to keep a connection open`, {
        limit_ms: limit,
      }),
      'idle_timeout',
    );
  }

  /** An error frame with id null, then close: the connection cannot go on. */
  private fail(error: EdgeechoError, reason: DisconnectReason): void {
    this.shared.stats.disconnects[reason]++;
    this.log.debug({ code: error.code }, error.message);
    this.sendError(null, error);
    this.close();
  }

  // ---- input ----

  private onData(chunk: Buffer): void {
    this.lastActivity = this.shared.clock.now();
    // a bad length throws from the splitter: the stream cannot be resynchronised, but the frames before it are
    // still answered, then the pump hands the error to fail()
    this.pump.feed(chunk, this.splitBound);
  }

  /** One frame body from the read pump. A request that needs an in-flight slot when none is free is held. */
  private onBody(body: Buffer): Handled {
    if (this.closing) return 'done';
    let value: unknown;
    try {
      value = unpackValue(body);
    } catch (err) {
      this.shared.stats.framesIn++;
      const reason = err instanceof Error ? err.message : String(err);
      this.sendError(null, new EdgeechoError('BAD_FRAME', `frame body of ${body.length} bytes is not valid msgpack: ${reason}`, { length: body.length }));
      return 'done';
    }
    const parsed = parseRequest(value);
    if (!parsed.ok) {
      this.shared.stats.framesIn++;
      this.sendError(parsed.id, parsed.error);
      return 'done';
    }
    const outcome = this.dispatch(parsed.request);
    if (outcome !== 'hold') this.shared.stats.framesIn++;
    return outcome;
  }

  private dispatch(request: Request): Handled {
    const { id, op } = request;
    if (this.inflight.has(id)) {
      this.sendError(id, new EdgeechoError('CONFLICT', `request id ${JSON.stringify(id)} is already in flight on this connection; ids must be unique among requests in flight`, { id, duplicate: true }));
      return 'done';
    }
    if (this.shared.shuttingDown && op !== 'cancel') {
      this.sendError(id, new EdgeechoError('SHUTTING_DOWN', `the daemon is shutting down and takes no new requests (op ${op})`, { op }));
      return 'done';
    }
    if (op === 'ping') {
      // the keepalive and benchmark path: answered inline, no table entry, no promise
      if (request.args && Object.keys(request.args).length > 0) return this.runCheckedArgs(request, CORE.get('ping')!);
      this.sendPingResult(id);
      return 'done';
    }
    const def = CORE.get(op) ?? this.shared.registry.get(op);
    if (!this.authenticated && !def?.beforeHello) {
      this.sendError(id, new EdgeechoError('UNAUTHENTICATED', `op ${op} needs a successful hello first; before it only hello and ping run`, { op }));
      return 'done';
    }
    if (!def) {
      this.sendError(id, new EdgeechoError('UNKNOWN_OP', `no op named ${JSON.stringify(op)}; known ops: ${[...new Set([...CORE.keys(), ...this.shared.registry.names()])].sort().join(', ')}`, { op }));
      return 'done';
    }
    return this.runCheckedArgs(request, def);
  }

  private runCheckedArgs(request: Request, def: OpDefinition<any>): Handled {
    const { id } = request;
    // At the limit the request waits unread until a slot frees (TCP backpressure); cancel is how a client at the
    // limit makes room, and it settles within a microtask, so it runs at once.
    if (this.inflight.size >= this.shared.limits.maxInflight && def.name !== 'cancel') {
      this.shared.stats.readPauses++;
      return 'hold';
    }
    let args: unknown;
    try {
      args = validateArgs(def.args, request.args, def.allowExtraArgs);
    } catch (err) {
      this.sendError(id, EdgeechoError.from(err));
      return 'done';
    }
    const entry = new InflightRequest(this, id, def.name, def.detached === true);
    this.inflight.set(id, entry);
    let pending: Promise<unknown>;
    try {
      pending = def.handler(args, entry);
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (data) => this.finish(entry, false, data),
      (err: unknown) => this.finish(entry, true, err),
    );
    return 'async';
  }

  /** Sends the one terminal frame of a request and frees its id. */
  private finish(entry: InflightRequest, failed: boolean, value: unknown): void {
    if (entry.done) return;
    entry.done = true;
    this.inflight.delete(entry.id);
    this.lastActivity = this.shared.clock.now();
    try {
      if (entry.abortedWith) {
        // cancelled or cut off at the shutdown deadline: that is the terminal, however the handler settled
        this.sendError(entry.id, entry.abortedWith);
      } else if (failed) {
        const error = EdgeechoError.from(value);
        if (error.code === 'INTERNAL') entry.log.error({ err: value }, 'op failed unexpectedly');
        this.sendError(entry.id, error);
      } else {
        this.send({ id: entry.id, kind: 'result', data: value === undefined ? null : value });
      }
    } catch (err) {
      // an op handing back what msgpack cannot carry (a bigint past 64 bits, a cycle) must still answer, and
      // must not throw out of this promise callback (an unhandled rejection ends the daemon)
      const reason = err instanceof Error ? err.message : String(err);
      entry.log.error({ err }, 'terminal frame cannot be encoded');
      this.sendError(entry.id, new EdgeechoError('INTERNAL', `the answer to request ${JSON.stringify(entry.id)} cannot be encoded as msgpack: ${reason}`));
    }
    if (this.inflight.size === this.shared.limits.maxInflight - 1) this.pump.kick();
    if (this.inflight.size === 0 && this.emptyWaiters.length > 0) {
      const waiters = this.emptyWaiters;
      this.emptyWaiters = [];
      for (const w of waiters) w();
    }
  }

  // ---- output ----

  /**
   * The ping answer, assembled from pre-encoded pieces: {id, kind: "result", data: {pong: true, time}}. The data
   * part changes once a millisecond, so it is encoded once per millisecond, not once per ping.
   */
  private sendPingResult(id: RequestId): void {
    if (!this.socket.writable) return;
    const now = Date.now();
    if (now !== pingCache.time) {
      pingCache.time = now;
      pingCache.data = packValue(pingResult(now));
    }
    const idBytes = typeof id === 'number' && id < 128 ? SMALL_INTS[id]! : packValue(id);
    this.shared.stats.framesOut++;
    if (!this.writer.sendBodyParts([PING_PREFIX, idBytes, PING_MIDDLE, pingCache.data])) this.onBlocked();
  }

  sendError(id: RequestId | null, error: EdgeechoError): void {
    this.send({ id, kind: 'error', error: error.toWire() });
  }

  send(frame: Record<string, unknown>): void {
    // after end() or destroy() nothing more may be written
    if (!this.socket.writable) return;
    this.shared.stats.framesOut++;
    if (this.writer.send(frame)) return;
    this.onBlocked();
  }

  /** The socket refused a write: a client whose unsent backlog passes maxWriteBuffer stopped reading. */
  private onBlocked(): void {
    const buffered = this.writer.bufferedBytes;
    const limit = this.shared.limits.maxWriteBuffer;
    if (buffered <= limit) return;
    this.shared.stats.disconnects.write_buffer++;
    this.log.warn({ buffered, limit }, 'client stopped reading: unsent bytes exceed EDGEECHO_MAX_WRITE_BUFFER, disconnecting');
    this.destroy();
  }

  /**
   * The read pump asks before each frame: while the socket holds output it refused, nothing more is read (a
   * pipelining client is slowed down, not buffered for). Output that does not drain within the stall timeout
   * means the client stopped reading: it is disconnected.
   */
  private outputBlocked(): boolean {
    if (this.writer.writable) return false;
    if (this.drainWait) return true;
    this.drainWait = true;
    this.shared.stats.readPauses++;
    const clock = this.shared.clock;
    this.stallTimer = clock.setTimer(() => this.onStall(), this.shared.limits.stallTimeoutMs);
    void this.writer.drained().then(() => {
      this.drainWait = false;
      clock.clearTimer(this.stallTimer);
      this.stallTimer = null;
      this.pump.kick();
    });
    return true;
  }

  private onStall(): void {
    this.stallTimer = null;
    if (!this.drainWait || this.closedFlag) return;
    const limit = this.shared.limits.stallTimeoutMs;
    this.shared.stats.disconnects.stalled++;
    this.log.warn({ buffered: this.writer.bufferedBytes, limit_ms: limit }, 'client stopped reading: output not drained within EDGEECHO_STALL_TIMEOUT_MS, disconnecting');
    this.destroy();
  }
}

/** One request in flight; it is the OpContext its handler sees. */
class InflightRequest implements OpContext {
  done = false;
  abortedWith: EdgeechoError | null = null;
  private controller: AbortController | null = null;
  private logger: Logger | null = null;

  constructor(
    private readonly connection: Connection,
    readonly id: RequestId,
    private readonly op: string,
    readonly detached: boolean,
  ) {}

  /** Created on first use: most fast ops never look at it. */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.abortedWith && !this.controller.signal.aborted) this.controller.abort(this.abortedWith);
    return this.controller.signal;
  }

  get log(): Logger {
    this.logger ??= this.connection.log.child({ req: this.id, op: this.op });
    return this.logger;
  }

  get control(): CoreControl {
    return this.connection;
  }

  get conn(): { readonly id: string; readonly peer: string; readonly client?: string } {
    const c = this.connection;
    return c.client === undefined ? { id: c.id, peer: c.peer.label } : { id: c.id, peer: c.peer.label, client: c.client };
  }

  abort(reason: EdgeechoError): void {
    if (this.abortedWith) return;
    this.abortedWith = reason;
    this.controller?.abort(reason);
  }

  status(fields: Record<string, unknown>): void {
    if (this.done || this.connection.closed) return;
    this.connection.send({ ...fields, id: this.id, kind: 'status' });
  }

  event(topic: string, data: unknown): void {
    if (this.connection.closed) return;
    this.connection.event(topic, data);
  }
}

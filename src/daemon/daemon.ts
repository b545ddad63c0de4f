/**
 * The daemon: listeners in, connections out, and the shutdown sequence. Everything about a single client lives
 * in connection.ts; everything about where sockets come from lives in listen.ts.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { encodeFrame, packValue } from '../../protocol/codec.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { PROTOCOL_VERSION, SUPPORTED_PROTOCOLS, type Greeting } from '../../protocol/messages.js';
import { PACKAGE_VERSION, type Config } from '../config.js';
import { CLOSE_GRACE_MS, Connection, systemClock, type Authenticate, type Clock, type ConnectionShared } from './connection.js';
import type { ListenAddress, Listener, Peer } from './listen.js';
import { listenersFromConfig } from './listeners-from-config.js';
import { registerCoreOps } from './core-ops.js';
import { DaemonStats } from './daemon-stats.js';
import { TurnScheduler } from './turn-scheduler.js';
import type { OpRegistry } from '../ops/contract.js';

export type DaemonConfig = Pick<
  Config,
  | 'host'
  | 'port'
  | 'tcp'
  | 'socket'
  | 'socketMode'
  | 'socketGroup'
  | 'maxFrame'
  | 'handshakeTimeoutMs'
  | 'idleTimeoutMs'
  | 'maxInflight'
  | 'maxConnections'
  | 'maxWriteBuffer'
  | 'stallTimeoutMs'
  | 'shutdownTimeoutMs'
>;

export interface DaemonOptions {
  config: DaemonConfig;
  registry: OpRegistry;
  log: Logger;
  /** Checks the token in hello; when set, the greeting lists auth ["token"] and hello must carry one. */
  authenticate?: Authenticate;
  /** Replaces the plain listeners built from config: planListeners (TLS, systemd sockets) decides them in the daemon command. */
  listeners?: Listener[];
  clock?: Clock;
  /** The runtime serving sessions, named in the hello result. */
  runtime?: string;
  /** The instance id of the ops' runtime (compose.ts), answered in hello and logged when listening. */
  instance?: string;
}

export interface ListenResult {
  tcp?: { host: string; port: number };
  socket?: string;
  /** Every listener by name, including any beyond tcp and unix. */
  listeners: Array<{ name: string; address: ListenAddress }>;
}

export class Daemon {
  readonly log: Logger;
  /** Counters for the metrics module; read, never reset. */
  readonly stats = new DaemonStats();
  private readonly config: DaemonConfig;
  private readonly shared: ConnectionShared;
  private readonly listeners: Listener[];
  private readonly open = new Set<Connection>();
  /** Closed connections whose detached ops still run: shutdown waits for them too. */
  private readonly draining = new Set<Connection>();
  private readonly rejected = new Set<Socket>();
  private nextConn = 0;
  private listening = false;
  private shutdownPromise: Promise<void> | null = null;

  constructor(options: DaemonOptions) {
    const { config } = options;
    checkLimits(config);
    this.config = config;
    this.log = options.log;
    const greeting: Greeting = {
      kind: 'hello',
      server: 'edgeecho',
      version: PACKAGE_VERSION,
      protocol: PROTOCOL_VERSION,
      protocols: [...SUPPORTED_PROTOCOLS],
      auth: options.authenticate ? ['token'] : [],
      max_frame: config.maxFrame,
    };
    this.shared = {
      limits: {
        maxFrame: config.maxFrame,
        handshakeTimeoutMs: config.handshakeTimeoutMs,
        idleTimeoutMs: config.idleTimeoutMs,
        maxInflight: config.maxInflight,
        maxWriteBuffer: config.maxWriteBuffer,
        stallTimeoutMs: config.stallTimeoutMs,
      },
      stats: this.stats,
      scheduler: new TurnScheduler(),
      registry: registerCoreOps(options.registry),
      version: PACKAGE_VERSION,
      ...(options.instance ? { instance: options.instance } : {}),
      greetingBody: packValue(greeting),
      clock: options.clock ?? systemClock,
      shuttingDown: false,
      ...(options.authenticate ? { authenticate: options.authenticate } : {}),
      ...(options.runtime ? { runtime: options.runtime } : {}),
    };
    this.listeners = options.listeners ?? listenersFromConfig(config);
    if (this.listeners.length === 0) {
      throw new EdgeechoError('BAD_REQUEST', 'nothing to listen on: EDGEECHO_TCP is false and EDGEECHO_SOCKET is empty; enable one of them', {
        tcp: config.tcp,
        socket: config.socket,
      });
    }
  }

  get connectionCount(): number {
    return this.open.size;
  }

  get shuttingDown(): boolean {
    return this.shared.shuttingDown;
  }

  /** Binds every listener; if one fails the others are closed again and the error is thrown. */
  async listen(): Promise<ListenResult> {
    if (this.listening) throw new EdgeechoError('CONFLICT', 'the daemon is already listening');
    this.listening = true;
    const result: ListenResult = { listeners: [] };
    const opened: Listener[] = [];
    try {
      for (const listener of this.listeners) {
        const address = await listener.open((socket, peer) => this.accept(socket, peer));
        opened.push(listener);
        result.listeners.push({ name: listener.name, address });
        if ('port' in address && (listener.name === 'tcp' || listener.name === 'tls')) result.tcp = address;
        if ('path' in address && listener.name === 'unix') result.socket = address.path;
      }
    } catch (err) {
      await Promise.all(opened.map((l) => l.close().catch(() => undefined)));
      this.listening = false;
      throw err;
    }
    this.log.info({ listeners: result.listeners, version: PACKAGE_VERSION, protocols: SUPPORTED_PROTOCOLS, instance: this.shared.instance }, 'listening');
    return result;
  }

  /** Sends an event frame to every connection past hello. */
  broadcast(topic: string, data: unknown): void {
    for (const conn of this.open) if (conn.isAuthenticated) conn.event(topic, data);
  }

  /**
   * Stops accepting, answers new requests with SHUTTING_DOWN, lets in-flight requests finish within
   * shutdownTimeoutMs, then ends the rest with SHUTTING_DOWN (aborting their handlers) and closes every
   * connection. Safe to call more than once.
   */
  shutdown(): Promise<void> {
    this.shutdownPromise ??= this.runShutdown();
    return this.shutdownPromise;
  }

  private async runShutdown(): Promise<void> {
    const deadlineMs = this.config.shutdownTimeoutMs;
    this.shared.shuttingDown = true;
    const inflight = this.inflightCount();
    this.log.info({ connections: this.open.size, inflight, deadline_ms: deadlineMs }, 'shutting down');
    // net.Server.close calls back only once every connection has gone, so it is awaited last
    const listenersClosed = this.listening ? Promise.all(this.listeners.map((l) => l.close().catch((err) => this.log.warn({ err }, 'listener close failed')))) : Promise.resolve();
    this.broadcast('shutdown', { deadline_ms: deadlineMs });

    const all = (): Connection[] => [...this.open, ...this.draining];
    const settled = Promise.all(all().map((c) => c.whenNoInflight())).then(() => true);
    let timer: unknown = null;
    const deadline = new Promise<boolean>((resolve) => {
      timer = this.shared.clock.setTimer(() => resolve(false), deadlineMs);
    });
    const finished = await Promise.race([settled, deadline]);
    this.shared.clock.clearTimer(timer);
    if (!finished) {
      const reason = new EdgeechoError('SHUTTING_DOWN', `aborted at the shutdown deadline of ${deadlineMs} ms (EDGEECHO_SHUTDOWN_TIMEOUT_MS)`, { deadline_ms: deadlineMs });
      const left = this.inflightCount();
      for (const conn of all()) conn.abortInflight(reason);
      this.log.warn({ aborted: left }, 'shutdown deadline reached, requests in flight aborted');
    }
    for (const conn of this.open) conn.close();
    for (const socket of this.rejected) socket.destroy();
    await Promise.all([...this.open].map((c) => c.whenClosed()));
    await listenersClosed;
    this.log.info('shut down');
  }

  /** Requests in flight on every connection, closed ones whose detached ops still run included. */
  inflightCount(): number {
    let n = 0;
    for (const c of this.open) n += c.inflightCount;
    for (const c of this.draining) n += c.inflightCount;
    return n;
  }

  private accept(socket: Socket, peer: Peer): void {
    socket.on('error', () => undefined);
    if (this.shared.shuttingDown) {
      socket.destroy();
      return;
    }
    if (this.open.size >= this.config.maxConnections) {
      this.refuse(socket, peer);
      return;
    }
    this.stats.connectionsAccepted++;
    const id = `c${(++this.nextConn).toString(36)}`;
    const conn = new Connection(id, socket, peer, this.shared, this.log.child({ conn: id, peer: peer.label }), (c) => this.gone(c));
    this.open.add(conn);
    conn.start();
  }

  /** Over max connections: one error frame instead of the greeting, then close. */
  private refuse(socket: Socket, peer: Peer): void {
    const limit = this.config.maxConnections;
    this.stats.connectionsRefused++;
    this.log.warn({ peer: peer.label, limit }, 'connection refused: max connections reached');
    const error = new EdgeechoError('RESOURCE_EXHAUSTED', `${limit} connections are open; limit is ${limit} (EDGEECHO_MAX_CONNECTIONS)`, { limit });
    this.rejected.add(socket);
    const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
    socket.once('close', () => {
      clearTimeout(timer);
      this.rejected.delete(socket);
    });
    socket.end(encodeFrame({ id: null, kind: 'error', error: error.toWire() }));
  }

  private gone(conn: Connection): void {
    this.open.delete(conn);
    if (conn.inflightCount === 0) return;
    this.draining.add(conn);
    void conn.whenNoInflight().then(() => this.draining.delete(conn));
  }
}

/** The config module validates env and flags; this guards callers that build a config by hand. */
function checkLimits(config: DaemonConfig): void {
  const problems: string[] = [];
  const positive: Array<[keyof DaemonConfig, string]> = [
    ['maxFrame', 'EDGEECHO_MAX_FRAME'],
    ['handshakeTimeoutMs', 'EDGEECHO_HANDSHAKE_TIMEOUT_MS'],
    ['idleTimeoutMs', 'EDGEECHO_IDLE_TIMEOUT_MS'],
    ['maxInflight', 'EDGEECHO_MAX_INFLIGHT'],
    ['maxConnections', 'EDGEECHO_MAX_CONNECTIONS'],
    ['maxWriteBuffer', 'EDGEECHO_MAX_WRITE_BUFFER'],
    ['stallTimeoutMs', 'EDGEECHO_STALL_TIMEOUT_MS'],
  ];
  for (const [key, env] of positive) {
    const v = config[key];
    if (!Number.isSafeInteger(v) || (v as number) < 1) problems.push(`${key} (${env}): expected a positive integer, got ${String(v)}`);
  }
  if (Number.isSafeInteger(config.maxFrame) && config.maxFrame > 0xffff_ffff) problems.push(`maxFrame (EDGEECHO_MAX_FRAME): expected at most ${0xffff_ffff}, got ${config.maxFrame}`);
  if (!Number.isSafeInteger(config.shutdownTimeoutMs) || config.shutdownTimeoutMs < 0) {
    problems.push(`shutdownTimeoutMs (EDGEECHO_SHUTDOWN_TIMEOUT_MS): expected an integer >= 0, got ${String(config.shutdownTimeoutMs)}`);
  }
  if (problems.length) throw new EdgeechoError('BAD_REQUEST', `invalid daemon configuration:\n  ${problems.join('\n  ')}`, { problems });
}

/** Test support: a daemon on port 0 and a raw frame client that records every frame it receives. */
import { connect, type Socket } from 'node:net';
import { encodeFrame, FrameDecoder } from '../../protocol/codec.js';
import { loadConfig } from '../../src/config.js';
import { Daemon, type DaemonConfig, type DaemonOptions } from '../../src/daemon/daemon.js';
import { OpRegistry, type OpDefinition } from '../../src/ops/contract.js';
import { silentLogger } from '../../src/log.js';

export type Frame = Record<string, any>;

export function testConfig(overrides: Partial<DaemonConfig> = {}): DaemonConfig {
  const { config } = loadConfig({ env: {}, argv: [] });
  return { ...config, host: '127.0.0.1', port: 0, socket: '', ...overrides };
}

export interface Running {
  daemon: Daemon;
  port: number;
  stop(): Promise<void>;
}

export async function startDaemon(
  overrides: Partial<DaemonConfig> = {},
  ops: OpDefinition<any>[] = [],
  extra: Partial<DaemonOptions> = {},
): Promise<Running> {
  const registry = new OpRegistry();
  for (const op of ops) registry.register(op);
  const daemon = new Daemon({ config: testConfig(overrides), registry, log: silentLogger, ...extra });
  const where = await daemon.listen();
  return { daemon, port: where.tcp!.port, stop: () => daemon.shutdown() };
}

export class WireClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  private waiters: Array<() => void> = [];
  private isClosed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      for (const f of this.decoder.push(chunk)) this.frames.push(f.ok ? (f.value as Frame) : { undecodable: f.error.message });
      this.wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve(new WireClient(socket));
      });
    });
  }

  /** Connects, reads the greeting and says hello. */
  static async ready(port: number): Promise<WireClient> {
    const c = await WireClient.connect(port);
    await c.waitFor((f) => f.kind === 'hello');
    const r = await c.request({ id: 'hello', op: 'hello', args: { client: 'test', protocol: 1 } });
    if (r.kind !== 'result') throw new Error(`hello failed: ${JSON.stringify(r)}`);
    return c;
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  send(frame: unknown): void {
    this.socket.write(encodeFrame(frame));
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Sends a request and resolves with its terminal frame. */
  async request(frame: { id: unknown; op: string; args?: unknown }, timeoutMs = 3000): Promise<Frame> {
    const from = this.frames.length;
    this.send(frame);
    return this.waitFor((f) => f.id === frame.id && (f.kind === 'result' || f.kind === 'error'), timeoutMs, from);
  }

  /** Resolves with the first frame from index `from` on matching pred, or rejects on timeout/close. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs = 3000, from = 0): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`));
      }, timeoutMs);
      const check = (): boolean => {
        const f = this.frames.slice(from).find(pred);
        if (f) {
          done();
          resolve(f);
          return true;
        }
        if (this.isClosed) {
          done();
          reject(new Error(`connection closed before a matching frame; got ${JSON.stringify(this.frames.slice(-5))}`));
          return true;
        }
        return false;
      };
      const waiter = (): void => void check();
      const done = (): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
      };
      if (!check()) this.waiters.push(waiter);
    });
  }

  /** Resolves once the server closes the connection; rejects after timeoutMs. */
  async waitClosed(timeoutMs = 3000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([this.closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs)))]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export { prng } from '../support/prng.js';

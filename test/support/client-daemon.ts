/**
 * A real Daemon on an ephemeral port (and optionally a unix socket) serving the core ops plus a few scripted
 * `test.*` ops, for client library and CLI tests that must see what the real connection code sends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeechoError, isErrorCode } from '../../protocol/errors.js';
import { loadConfig } from '../../src/config.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { OpRegistry } from '../../src/ops/contract.js';
import { silentLogger } from '../../src/log.js';
import { registerCoreOps } from '../../src/daemon/core-ops.js';

export interface TestDaemon {
  daemon: Daemon;
  port: number;
  socket: string;
  /** Handlers of test.wait that have seen their signal abort, by `tag`. */
  aborted: string[];
  stop(): Promise<void>;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });

export async function startTestDaemon(options: { token?: string; env?: Record<string, string> } = {}): Promise<TestDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-client-'));
  const socket = join(dir, 'edgeecho.sock');
  const { config } = loadConfig({ env: { EDGEECHO_PORT: '0', EDGEECHO_SOCKET: socket, ...options.env }, argv: [] });
  const aborted: string[] = [];
  const registry = registerCoreOps(new OpRegistry());
  registry.register({
    name: 'test.echo',
    summary: 'returns its args',
    args: { i: { type: 'int' }, text: { type: 'string' }, big: { type: 'int' } },
    handler: async (args) => args,
  });
  registry.register<{ code: string; message?: string }>({
    name: 'test.fail',
    summary: 'throws the given error code',
    args: { code: { type: 'string', required: true }, message: { type: 'string' } },
    handler: async ({ code, message }) => {
      throw new EdgeechoError(isErrorCode(code) ? code : 'INTERNAL', message ?? `asked to fail with ${code}`, { asked: code });
    },
  });
  registry.register<{ n: number; ms?: number }>({
    name: 'test.steps',
    summary: 'n status frames, then a result',
    args: { n: { type: 'int', required: true, min: 0, max: 1000 }, ms: { type: 'int', min: 0, max: 1000 } },
    handler: async ({ n, ms }, ctx) => {
      for (let i = 0; i < n; i++) {
        ctx.status({ step: 'tick', i });
        if (ms) await sleep(ms, ctx.signal);
      }
      return { done: n };
    },
  });
  registry.register<{ tag: string }>({
    name: 'test.wait',
    summary: 'one status, then waits for its signal',
    args: { tag: { type: 'string', required: true } },
    handler: async ({ tag }, ctx) => {
      ctx.status({ step: 'waiting' });
      await new Promise<void>((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => {
          aborted.push(tag);
          reject(ctx.signal.reason);
        }, { once: true });
      });
    },
  });
  registry.register<{ topic: string }>({
    name: 'test.event',
    summary: 'sends an event, then a result',
    args: { topic: { type: 'string', required: true } },
    handler: async ({ topic }, ctx) => {
      ctx.event(topic, { from: ctx.id });
      return { sent: topic };
    },
  });
  const daemon = new Daemon({
    config,
    registry,
    log: silentLogger,
    ...(options.token ? { authenticate: async (token: string | undefined) => token === options.token } : {}),
  });
  const where = await daemon.listen();
  return {
    daemon,
    port: where.tcp!.port,
    socket: where.socket!,
    aborted,
    stop: async () => {
      try {
        await daemon.shutdown();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * A real Daemon (real sockets, real frames) whose registry holds FAKE session ops: session.create emits
 * the status frames a workflow emits (admission, network, probe, stream) with short real delays, and fails
 * at the probe step when count is 13. For CLI tests that must not need Docker.
 */
import { EdgeechoError } from '../../protocol/errors.js';
import { loadConfig } from '../../src/config.js';
import { Daemon, type DaemonOptions } from '../../src/daemon/daemon.js';
import { OpRegistry, type OpContext } from '../../src/ops/contract.js';
import { silentLogger } from '../../src/log.js';

export const FAIL_COUNT = 13;
export const STEP_DELAY_MS = 120;

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });

async function step(ctx: OpContext, name: string, fail?: EdgeechoError): Promise<void> {
  const started = Date.now();
  ctx.status({ step: name, state: 'started', elapsed_ms: 0 });
  await sleep(STEP_DELAY_MS, ctx.signal);
  if (fail) {
    ctx.status({ step: name, state: 'failed', elapsed_ms: Date.now() - started, details: { error: fail.toWire() } });
    throw fail;
  }
  ctx.status({ step: name, state: 'done', elapsed_ms: Date.now() - started });
}

export const SESSION = {
  id: 's-0001',
  mode: 'plain',
  count: 10,
  payload_bytes: 64,
  rate: null,
  state: 'ready',
  created_at: Date.now(),
  updated_at: Date.now(),
  ended_at: null,
  network: { id: 'n1', name: 'edgeecho-s-0001', subnet: '10.213.0.0/28' },
  containers: [
    { id: 'a'.repeat(64), name: 'edgeecho-s-0001-probe', role: 'probe', started_at: null, finished_at: null, exit_code: null, stats: null },
    { id: 'b'.repeat(64), name: 'edgeecho-s-0001-stream', role: 'stream', started_at: null, finished_at: null, exit_code: null, stats: null },
  ],
  location: { host: '127.0.0.1', port: 32768 },
  probe: { probe_id: 's-0001', count: 10 },
  error: null,
  transitions: [{ state: 'creating', at: Date.now() }, { state: 'ready', at: Date.now() }],
};

export function fakeSessionRegistry(): OpRegistry {
  const registry = new OpRegistry();
  registry.register<{ mode?: string; count: number; payload_bytes?: number; rate?: number }>({
    name: 'session.create',
    summary: 'FAKE: status frames like the workflow, no Docker',
    args: { mode: { type: 'enum', values: ['plain', 'segmented'] }, count: { type: 'int', required: true, min: 1 }, payload_bytes: { type: 'int', min: 1 }, rate: { type: 'int', min: 0 } },
    async handler(args, ctx) {
      await step(ctx, 'admission');
      await step(ctx, 'network');
      if (args.count === FAIL_COUNT) await step(ctx, 'probe', new EdgeechoError('TIMEOUT', 'probe not ready within 30000 ms (EDGEECHO_READY_TIMEOUT_MS)'));
      await step(ctx, 'probe');
      await step(ctx, 'stream');
      return { id: SESSION.id, location: SESSION.location, network: SESSION.network, containers: SESSION.containers.map(({ id, name, role }) => ({ id, name, role })), probe: SESSION.probe };
    },
  });
  registry.register({
    name: 'session.list',
    summary: 'FAKE',
    args: { state: { type: 'string' }, limit: { type: 'int', min: 1 }, before: { type: 'string' } },
    // a first page with a cursor, a last page without
    handler: async (args: { before?: string }) => (args.before ? { sessions: [], next: null } : { sessions: [SESSION], next: 'page-2' }),
  });
  registry.register<{ id: string }>({
    name: 'session.get',
    summary: 'FAKE',
    args: { id: { type: 'string', required: true } },
    async handler(args) {
      if (args.id !== SESSION.id) throw new EdgeechoError('NOT_FOUND', `no session "${args.id}"`, { id: args.id });
      return SESSION;
    },
  });
  registry.register<{ id: string }>({
    name: 'session.stop',
    summary: 'FAKE',
    args: { id: { type: 'string', required: true } },
    async handler(args, ctx) {
      if (args.id !== SESSION.id) throw new EdgeechoError('NOT_FOUND', `no session "${args.id}"`, { id: args.id });
      await step(ctx, 'stop containers');
      return { ...SESSION, state: 'stopped' };
    },
  });
  registry.register({
    name: 'resources',
    summary: 'FAKE',
    args: { fresh: { type: 'boolean' } },
    handler: async () => ({
      at: Date.now(),
      host: { cpus: 2, cpu_percent: 10, memory_total_bytes: 2 ** 32, memory_available_bytes: 2 ** 31, load: [0.1, 0.2, 0.3], data_dir: '/var/lib/edgeecho', disk_free_bytes: 2 ** 33, disk_total_bytes: 2 ** 34 },
      engine: { name: 'docker', reachable: true, running: 2, containers: 2, networks: 1 },
      sessions: [{ session: SESSION.id, containers: 2, cpu_percent: 1.5, memory_bytes: 2 ** 25, memory_limit_bytes: 2 ** 28 }],
    }),
  });
  return registry;
}

export interface FakeDaemon {
  daemon: Daemon;
  port: number;
  close(): Promise<void>;
}

export async function startFakeDaemon(extra: Partial<DaemonOptions> = {}, env: NodeJS.ProcessEnv = {}): Promise<FakeDaemon> {
  const { config } = loadConfig({ env: { EDGEECHO_PORT: '0', EDGEECHO_SHUTDOWN_TIMEOUT_MS: '1000', ...env } });
  const daemon = new Daemon({ config, registry: fakeSessionRegistry(), log: silentLogger, ...extra });
  const result = await daemon.listen();
  const tcp = result.tcp ?? result.listeners.map((l) => l.address).find((a): a is { host: string; port: number } => 'port' in a);
  if (!tcp) {
    await daemon.shutdown();
    throw new Error('fake daemon: no TCP listener');
  }
  return { daemon, port: tcp.port, close: () => daemon.shutdown() };
}

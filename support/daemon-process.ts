/**
 * A real `edgeecho daemon` as a child process (TypeScript source through tsx) on a free port with its own data
 * dir, for tests and benches that must kill it the hard way and start it again on the same records. Every
 * object it creates carries the given io.edgeecho.test label (EDGEECHO_OBJECT_LABELS), so cleanup can find
 * them by that label without touching other users of the engine. Its own data dir makes it its own instance: its
 * reaper, sweep and reconcile judge only objects labelled with that instance, so the default orphan grace cannot
 * reach the objects of other daemons, tests, or edgeecho versions before instances (unlabelled, claimed by no
 * record of a fresh data dir).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { LABEL_SESSION } from '../src/runtime/driver.js';

const BIN = fileURLToPath(new URL('../bin/edgeecho.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const TEST_LABEL = 'io.edgeecho.test';
/** tsx compiles the source on first start: a few seconds on a 2-core machine, more under load. */
export const DEFAULT_START_TIMEOUT_MS = 60_000;
const LOG_LINES_KEPT = 2000;

export interface DaemonProcessOptions {
  /** Records of an earlier daemon to start on; default a fresh temp dir (removed by `cleanup`). */
  dataDir?: string;
  /** Value of io.edgeecho.test on every object the daemon creates. */
  label: string;
  /** Extra flags, e.g. ['--max-sessions', '1']. */
  args?: string[];
  env?: Record<string, string>;
  startTimeoutMs?: number;
  /** Start through `npm start` (pid is then npm's) instead of bin/edgeecho.js: signals must still reach the daemon. */
  viaNpmStart?: boolean;
}

export interface LogLine {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export interface DaemonProcess {
  port: number;
  pid: number;
  dataDir: string;
  child: ChildProcess;
  /** Parsed JSON log lines so far (the last LOG_LINES_KEPT). */
  logs: LogLine[];
  /** Resolves with the first log line (seen so far or later) that matches. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends the signal and waits for the exit; a no-op once exited. */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly exited: boolean;
}

export function tempDataDir(prefix = 'edgeecho-daemon-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startDaemonProcess(options: DaemonProcessOptions): Promise<DaemonProcess> {
  const dataDir = options.dataDir ?? tempDataDir();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    EDGEECHO_FROM_SOURCE: '1',
    EDGEECHO_DATA_DIR: dataDir,
    EDGEECHO_PORT: '0',
    EDGEECHO_TCP: 'true',
    EDGEECHO_SOCKET: '',
    EDGEECHO_TOKEN_FILE: '',
    EDGEECHO_LOG_LEVEL: 'info',
    EDGEECHO_OBJECT_LABELS: `${TEST_LABEL}=${options.label}`,
    ...options.env,
  };
  // The "listening" line is how the port is learned: levels above info would hide it.
  if (!['trace', 'debug', 'info'].includes(env.EDGEECHO_LOG_LEVEL ?? '')) env.EDGEECHO_LOG_LEVEL = 'info';
  delete env.NOTIFY_SOCKET;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  const child = options.viaNpmStart
    ? spawn('npm', ['start', '--silent', '--', ...(options.args ?? [])], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [BIN, 'daemon', ...(options.args ?? [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  const waiters = new Set<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitPromise = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });

  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const text of lines) {
      if (!text.trim()) continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { msg: text };
      }
      logs.push(line);
      if (logs.length > LOG_LINES_KEPT) logs.shift();
      for (const w of [...waiters]) if (w.match(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr.push(chunk);
    if (stderr.length > 200) stderr.shift();
  });

  const tail = (): string => [...logs.slice(-10).map((l) => JSON.stringify(l)), stderr.join('').slice(-2000)].join('\n');

  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`daemon pid ${child.pid}: expected a matching log line within ${timeoutMs} ms; last output:\n${tail()}`));
      }, timeoutMs);
      waiters.add(waiter);
      void exitPromise.then((e) => {
        if (!waiters.has(waiter)) return;
        waiters.delete(waiter);
        clearTimeout(timer);
        reject(new Error(`daemon pid ${child.pid} exited (code ${e.code}, signal ${e.signal}) before the expected log line; last output:\n${tail()}`));
      });
    });
  };

  const kill = async (signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (exit) return exit;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
    const done = await Promise.race([exitPromise, late]);
    clearTimeout(timer);
    if (done) return done;
    // A daemon that ignores SIGTERM past the deadline must still not outlive the test.
    child.kill('SIGKILL');
    return exitPromise;
  };

  let listening: LogLine;
  try {
    listening = await waitForLog((l) => l.msg === 'listening', options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  } catch (err) {
    await kill('SIGKILL');
    if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const listeners = listening.listeners as Array<{ name: string; address: { port?: number } }>;
  const port = listeners.find((l) => l.name === 'tcp')?.address.port;
  if (!port) {
    await kill('SIGKILL');
    if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw new Error(`daemon pid ${child.pid}: expected a tcp listener in the "listening" line, got ${JSON.stringify(listeners)}`);
  }
  return {
    port,
    pid: child.pid!,
    dataDir,
    child,
    logs,
    waitForLog,
    kill,
    get exited() {
      return exit !== null;
    },
  };
}

/** Containers and networks carrying io.edgeecho.test=<label> (and, when given, of these sessions only). */
export async function labelledObjects(docker: Docker, label: string, sessions?: Iterable<string>): Promise<{ containers: string[]; networks: string[] }> {
  const filters = { label: [`${TEST_LABEL}=${label}`] };
  const wanted = sessions ? new Set(sessions) : null;
  const keep = (labels: Record<string, string> | undefined): boolean => !wanted || wanted.has(labels?.[LABEL_SESSION] ?? '');
  const containers = (await docker.listContainers({ all: true, filters })).filter((c) => keep(c.Labels)).map((c) => c.Names[0]?.replace(/^\//, '') ?? c.Id);
  const networks = (await docker.listNetworks({ filters })).filter((n) => keep(n.Labels)).map((n) => n.Name);
  return { containers, networks };
}

/** The session view as session.get/watch answer it, the fields these tests read. */
export interface SessionView {
  id: string;
  state: string;
  error?: { code: string; message: string } | null;
  transitions: Array<{ state: string; reason?: string }>;
  containers: Array<{ role: string; exit_code: number | null; stats: Record<string, unknown> | null }>;
}

/** A waitFor condition: true once no container or network of these sessions (under this label) is left. */
export const noneLeft = (docker: Docker, label: string, ids: string[]) => async (): Promise<true | undefined> => {
  const left = await labelledObjects(docker, label, ids);
  return left.containers.length + left.networks.length === 0 ? true : undefined;
};

/** Removes every object carrying io.edgeecho.test=<label>: only this label's owner creates those. */
export async function removeLabelled(docker: Docker, label: string): Promise<void> {
  const filters = { label: [`${TEST_LABEL}=${label}`] };
  const containers = await docker.listContainers({ all: true, filters }).catch(() => []);
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  const networks = await docker.listNetworks({ filters }).catch(() => []);
  for (const n of networks) await docker.getNetwork(n.Id).remove().catch(() => undefined);
}

/** Kills whatever daemons are given (SIGKILL), removes their labelled objects and the data dirs. */
export async function cleanupDaemons(docker: Docker | null, label: string, daemons: Array<DaemonProcess | undefined>, dataDirs: string[]): Promise<void> {
  await Promise.all(daemons.map((d) => d?.kill('SIGKILL')));
  if (docker) await removeLabelled(docker, label);
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
}

/** Polls `probe` until it returns a value other than undefined, or fails naming `what` after timeoutMs. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) throw new Error(`expected ${what} within ${timeoutMs} ms${last ? `; last error: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** io.edgeecho.test value unique to this process, so two runs of one suite never clean up each other's objects. */
export function runLabel(area: string): string {
  return `${area}-${process.pid}`;
}

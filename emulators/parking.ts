/**
 * Parking (emulators/CONTRACT.md, "Parking"): with EMULATOR_PARKED=1 an emulator is started ahead of its session
 * (the daemon keeps a warm pool) and must not act on its env yet. It prints {"event":"parked","role":...} once,
 * then blocks on stdin for ONE JSON line: an object of env var names to string values, the session's parameters
 * under the same names a cold start reads from its env. It then runs exactly as a cold start with its env
 * overlaid by that line. Blocking on a pipe read uses no CPU, and the idle watchdog only exists after the line.
 */
import { writeSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { log, retry, EXIT_CONFIG, EXIT_TERMINATED, type Role } from './lifecycle.js';

export const PARKED_ENV = 'EMULATOR_PARKED';
/**
 * First connect retry of an unparked emulator: its upstream gets its line at the same moment and listens within
 * milliseconds, so waiting the cold start's 50 ms would be most of a claim's time.
 */
export const UNPARKED_RETRY_INITIAL_MS = 2;
/** The longest retry delay of an unparked emulator during its first UNPARKED_FAST_WINDOW_MS (then it backs off as cold). */
export const UNPARKED_RETRY_FAST_MAX_MS = 8;
export const UNPARKED_FAST_WINDOW_MS = 500;
/** A parameter line longer than this is refused: the daemon sends a few hundred bytes. */
export const MAX_PARAMETER_LINE_BYTES = 64 * 1024;
/** The warm-up before parking gives up after this long: it only saves time later, it must never block parking. */
export const WARM_UP_TIMEOUT_MS = 1_000;

type Env = Record<string, string | undefined>;

/** Prints the stats line a parked emulator ends with (the contract's "stats exactly once, last") and exits. */
function endParked(role: Role, code: number, error: string): never {
  log(role, 'failed', { error, exit: code });
  writeSync(1, JSON.stringify({ event: 'stats', role, frames: 0, bytes: 0, lost: 0, out_of_order: 0, duration_ms: 0, rate: 0, error }) + '\n');
  process.exit(code);
}

/** Parses the parameter line: a JSON object whose values are strings (env values). */
export function parseParameterLine(line: string): Env {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new Error(`parameter line is not JSON: ${(err as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('parameter line: expected a JSON object of env var names to string values');
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new Error(`parameter line: ${k} must be a string (an env value), got ${typeof v}`);
  }
  return value as Env;
}

/** The env the emulator runs with: its own, or, when parked, its own overlaid by the parameter line. */
export async function sessionEnv(role: Role, env: Env = process.env): Promise<Env> {
  if (env[PARKED_ENV] !== '1') return env;
  const onTerm = (): void => endParked(role, EXIT_TERMINATED, 'terminated by SIGTERM while parked');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onTerm);
  await warmUp();
  log(role, 'parked: waiting for the session parameters on stdin');
  writeSync(1, JSON.stringify({ event: 'parked', role }) + '\n');
  const line = await readLine(role);
  process.off('SIGTERM', onTerm);
  process.off('SIGINT', onTerm);
  let parameters: Env;
  try {
    parameters = parseParameterLine(line);
  } catch (err) {
    endParked(role, EXIT_CONFIG, (err as Error).message);
  }
  log(role, 'unparked', { parameters: Object.keys(parameters) });
  retry.initialMs = UNPARKED_RETRY_INITIAL_MS;
  retry.fastMaxMs = UNPARKED_RETRY_FAST_MAX_MS;
  retry.fastWindowMs = UNPARKED_FAST_WINDOW_MS;
  return { ...env, ...parameters, [PARKED_ENV]: '0' };
}

/**
 * One TCP round trip over loopback before parking: Node compiles its socket paths (listen, connect, write, read,
 * close) on first use, and a claim's three emulators doing that at once cost about 40% more CPU to reach ready
 * (measured: 19 -> 11 ms per segmented session). On a burst of claims sharing two cores, that CPU is the wait.
 * Paid once while parking, never on a claim; any failure only skips it.
 */
export function warmUp(timeoutMs = WARM_UP_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve) => {
    const server = createServer((peer) => {
      peer.setNoDelay(true);
      peer.on('error', () => undefined);
      peer.on('data', () => peer.end(Buffer.alloc(8)));
    });
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      server.close();
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    server.on('error', finish);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (!address || typeof address === 'string') return finish();
      const socket = connect({ host: '127.0.0.1', port: address.port }, () => {
        socket.setNoDelay(true);
        socket.write(Buffer.alloc(8));
      });
      socket.on('data', () => undefined);
      socket.on('error', finish);
      socket.on('close', finish);
    });
  });
}

function readLine(role: Role): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stdin = process.stdin;
    const onData = (chunk: Buffer): void => {
      const nl = chunk.indexOf(0x0a);
      chunks.push(nl < 0 ? chunk : chunk.subarray(0, nl));
      size += chunk.length;
      if (nl >= 0) {
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        // Nothing more is read: the process must not stay alive for stdin, nor buffer what follows.
        stdin.pause();
        stdin.unref?.();
        resolve(Buffer.concat(chunks).toString('utf8'));
      } else if (size > MAX_PARAMETER_LINE_BYTES) {
        endParked(role, EXIT_CONFIG, `parameter line longer than ${MAX_PARAMETER_LINE_BYTES} bytes`);
      }
    };
    const onEnd = (): void => endParked(role, EXIT_CONFIG, 'stdin closed while parked, before a parameter line arrived');
    stdin.on('data', onData);
    stdin.on('end', onEnd);
  });
}

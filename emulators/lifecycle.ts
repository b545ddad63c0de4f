/**
 * What every emulator shares: the stdout contract (one JSON object per line: ready once, stats once and last),
 * the idle watchdog (no wait lasts longer than EMULATOR_IDLE_TIMEOUT_MS without progress), SIGTERM handling and
 * exit codes. Logs go to stderr.
 */
import { writeSync } from 'node:fs';
import { connect, type NetConnectOpts, type Socket } from 'node:net';

export const EXIT_OK = 0;
/** Frames lost, reordered, checksum mismatch, or a peer went away before the run completed. */
export const EXIT_INCOMPLETE = 1;
export const EXIT_CONFIG = 2;
export const EXIT_IDLE_TIMEOUT = 3;
export const EXIT_TERMINATED = 143;
/** A data window shorter than this gives no rate (one batch written in microseconds is not a throughput). */
export const MIN_RATE_WINDOW_MS = 1;

export type Role = 'probe' | 'stream' | 'segmentation';

export interface Counters {
  frames: number;
  bytes: number;
  lost: number;
  out_of_order: number;
}

export function log(role: Role, message: string, fields: Record<string, unknown> = {}): void {
  writeSync(2, JSON.stringify({ time: Date.now(), role, msg: message, ...fields }) + '\n');
}

export class EmulatorRun {
  /** What the emulator is waiting for: the reason given on an idle timeout or SIGTERM. */
  phase = 'starting';
  readonly counters: Counters = { frames: 0, bytes: 0, lost: 0, out_of_order: 0 };
  /** Role-specific fields appended to the stats line. */
  extras: Record<string, unknown> = {};
  /** Set once nothing is left but closing: SIGTERM then still exits 0. */
  complete = false;
  private firstAt = 0;
  private lastAt = 0;
  private cpuAtFirst: NodeJS.CpuUsage | null = null;
  private lastActivity = Date.now();
  private watchdog: NodeJS.Timeout;
  private finished = false;
  private readyPrinted = false;
  private readonly onTerm = (): void => {
    this.finish(this.complete ? EXIT_OK : EXIT_TERMINATED, this.complete ? undefined : `terminated by SIGTERM while ${this.phase}`);
  };

  constructor(
    readonly role: Role,
    readonly idleTimeoutMs: number,
  ) {
    this.watchdog = setTimeout(() => this.checkIdle(), idleTimeoutMs);
    process.on('SIGTERM', this.onTerm);
    process.on('SIGINT', this.onTerm);
  }

  /** Progress: data read or written, a peer arrived. Cheap enough for the hot path. */
  touch(): void {
    this.lastActivity = Date.now();
  }

  setPhase(phase: string): void {
    this.phase = phase;
    this.touch();
    log(this.role, phase);
  }

  /** Marks the data window used for duration_ms and rate. */
  markData(): void {
    const now = performance.now();
    if (this.firstAt === 0) {
      this.firstAt = now;
      this.cpuAtFirst = process.cpuUsage();
    }
    this.lastAt = now;
  }

  ready(fields: Record<string, unknown>): void {
    if (this.readyPrinted) return;
    this.readyPrinted = true;
    writeSync(1, JSON.stringify({ event: 'ready', role: this.role, ...fields }) + '\n');
  }

  private checkIdle(): void {
    const idle = Date.now() - this.lastActivity;
    if (idle >= this.idleTimeoutMs) {
      this.finish(EXIT_IDLE_TIMEOUT, `idle timeout: nothing happened for ${idle} ms (EMULATOR_IDLE_TIMEOUT_MS=${this.idleTimeoutMs}) while ${this.phase}`);
    } else {
      this.watchdog = setTimeout(() => this.checkIdle(), this.idleTimeoutMs - idle);
    }
  }

  /** Prints the stats line (once) and exits. An error makes the exit code at least EXIT_INCOMPLETE. */
  finish(code: number, error?: string): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.watchdog);
    // A run cut off (SIGTERM, a failure) was moving data until now: its window ends here, not at the last mark
    // (the probe marks only the start and end of sending, so a stop mid-run read as a 0 ms window at a huge rate).
    const end = error && this.firstAt ? performance.now() : this.lastAt;
    const durationMs = this.firstAt ? end - this.firstAt : 0;
    const c = this.counters;
    const stats: Record<string, unknown> = {
      event: 'stats',
      role: this.role,
      ...c,
      duration_ms: Math.round(durationMs * 1000) / 1000,
      // Frames per second only over a window long enough to mean something; null otherwise (never a made-up figure).
      rate: durationMs >= MIN_RATE_WINDOW_MS ? Math.round((c.frames / durationMs) * 1000) : c.frames === 0 ? 0 : null,
      // CPU (user + system) from the first data frame to now: what moving the data cost, startup left out
      cpu_ms: this.cpuAtFirst ? cpuMs(process.cpuUsage(this.cpuAtFirst)) : 0,
      ...this.extras,
    };
    if (error) stats.error = error;
    if (error) log(this.role, 'failed', { error, exit: code });
    writeSync(1, JSON.stringify(stats) + '\n');
    process.exit(error && code === EXIT_OK ? EXIT_INCOMPLETE : code);
  }
}

const cpuMs = (u: NodeJS.CpuUsage): number => Math.round((u.user + u.system) / 1000);

export const DEFAULT_RETRY_INITIAL_MS = 50;
export const DEFAULT_RETRY_MAX_MS = 1000;
/**
 * The retry delays in use. An unparked emulator (parking.ts) starts low, its upstream being unparked with it, and
 * does not let the delay double past `fastMaxMs` for the first `fastWindowMs` of its attempts: on a busy host the
 * upstream listens tens of milliseconds late, and a delay doubled to 32 or 64 ms by then was as much again.
 */
export const retry = { initialMs: DEFAULT_RETRY_INITIAL_MS, fastMaxMs: DEFAULT_RETRY_MAX_MS, fastWindowMs: 0 };

/**
 * Connects, retrying with exponential backoff while the peer is not there yet (refused, unresolvable name,
 * unreachable): containers start in any order. The idle watchdog bounds the total wait.
 */
export function connectWithRetry(run: EmulatorRun, host: string, port: number, what: string, options: Omit<NetConnectOpts, 'host' | 'port'> = {}): Promise<Socket> {
  let delay = retry.initialMs;
  let attempts = 0;
  const began = Date.now();
  return new Promise((resolve) => {
    const attempt = (): void => {
      attempts++;
      const socket = connect({ ...options, host, port } as NetConnectOpts);
      const onError = (err: NodeJS.ErrnoException): void => {
        socket.destroy();
        run.phase = `connecting to ${what} at ${host}:${port} (attempt ${attempts}, last error ${err.code ?? err.message})`;
        log(run.role, 'connect attempt failed; retrying', { peer: `${host}:${port}`, attempt: attempts, err: err.code ?? err.message, retry_ms: delay });
        setTimeout(attempt, delay);
        delay = Math.min(delay * 2, Date.now() - began < retry.fastWindowMs ? retry.fastMaxMs : DEFAULT_RETRY_MAX_MS);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        socket.setNoDelay(true);
        run.touch();
        resolve(socket);
      });
    };
    attempt();
  });
}

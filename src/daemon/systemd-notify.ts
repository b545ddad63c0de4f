/**
 * sd_notify without a native addon: readiness, status and watchdog pings are sent by running
 * systemd-notify(1), because Node cannot open the AF_UNIX datagram socket $NOTIFY_SOCKET names.
 * The unit needs NotifyAccess=all (the sender is a child, not the main PID). systemd-notify (>= 246)
 * waits until the manager has processed each message, so it cannot exit before systemd has
 * attributed it to the service's cgroup.
 * Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
 */
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';

/** A systemd-notify that hangs (a stuck manager) must not pile up children. */
export const DEFAULT_NOTIFY_TIMEOUT_MS = 5_000;

export type RunNotify = (command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number) => Promise<void>;

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv;
  pid?: number;
  log?: Logger;
  /** The program to run; tests point it at a stand-in. */
  command?: string;
  run?: RunNotify;
  timers?: { setInterval: typeof setInterval; clearInterval: typeof clearInterval };
}

export interface SystemdNotifier {
  /** True when started by systemd with Type=notify (NOTIFY_SOCKET set). */
  readonly enabled: boolean;
  /** Half of WatchdogSec= in milliseconds, or null when systemd expects no pings from this process. */
  readonly watchdogIntervalMs: number | null;
  ready(status?: string): Promise<void>;
  status(text: string): Promise<void>;
  stopping(status?: string): Promise<void>;
  /** Pings WATCHDOG=1 every watchdogIntervalMs while the event loop turns; returns the stop function. */
  startWatchdog(): () => void;
}

const runExecFile: RunNotify = (command, args, env, timeoutMs) =>
  new Promise((resolve, reject) => {
    execFile(command, args, { env, timeout: timeoutMs, windowsHide: true }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });

export function createSystemdNotifier(options: NotifierOptions = {}): SystemdNotifier {
  const env = options.env ?? process.env;
  const pid = options.pid ?? process.pid;
  const command = options.command ?? 'systemd-notify';
  const run = options.run ?? runExecFile;
  const timers = options.timers ?? { setInterval, clearInterval };
  const socket = env.NOTIFY_SOCKET;
  const enabled = typeof socket === 'string' && socket.length > 0;
  const watchdogIntervalMs = enabled ? watchdogInterval(env, pid) : null;
  // Only what systemd-notify needs: it must not see LISTEN_* or the daemon's own settings.
  const childEnv: NodeJS.ProcessEnv = { NOTIFY_SOCKET: socket, PATH: env.PATH ?? '/usr/bin:/bin' };

  const send = async (args: string[]): Promise<void> => {
    if (!enabled) return;
    try {
      await run(command, args, childEnv, DEFAULT_NOTIFY_TIMEOUT_MS);
    } catch (err) {
      // Not fatal: a missed READY=1 shows up as a start timeout in systemctl status, which names the unit.
      options.log?.warn({ err: (err as Error).message, notify: args }, 'systemd notification failed');
    }
  };

  return {
    enabled,
    watchdogIntervalMs,
    ready: (status) => send(['--ready', ...(status ? [`--status=${status}`] : [])]),
    status: (text) => send([`--status=${text}`]),
    stopping: (status) => send(['STOPPING=1', ...(status ? [`--status=${status}`] : [])]),
    startWatchdog() {
      if (watchdogIntervalMs === null) return () => {};
      let pending = false;
      const timer = timers.setInterval(() => {
        // A ping still running means the manager is slow; queueing more would not help it.
        if (pending) return;
        pending = true;
        void send(['WATCHDOG=1']).finally(() => (pending = false));
      }, watchdogIntervalMs);
      (timer as { unref?: () => void }).unref?.();
      return () => timers.clearInterval(timer);
    },
  };
}

/** systemd asks for pings with WATCHDOG_USEC, addressed to WATCHDOG_PID when set; ping at half the period. */
function watchdogInterval(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isSafeInteger(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && Number(env.WATCHDOG_PID) !== pid) return null;
  return Math.max(1, Math.floor(usec / 2 / 1000));
}

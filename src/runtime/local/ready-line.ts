/**
 * Waits for a local role's ready line in its stdout file. The file is followed through inotify (fs.watch), with
 * a slow re-read as a guard for file systems without it; the wait ends with the first of: the ready line, the
 * process exiting first (the file is read once more, then the caller's error), the timeout, or the signal.
 */
import { closeSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import { EdgeechoError } from '../../../protocol/errors.js';
import type { ReadyInfo } from '../driver.js';
import { parseEventLine } from '../emulator-lines.js';
import { tailLines } from './log-files.js';

/** The guard re-read; inotify normally wakes the wait within a millisecond of the write. */
export const READY_REREAD_MS = 250;
export const STDERR_TAIL_LINES = 20;

export interface ReadyLineOptions {
  stdoutPath: string;
  stderrPath: string;
  /** e.g. "process edgeecho-x-probe", for messages. */
  name: string;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Settles once the process has exited. */
  exited: Promise<unknown>;
  /** The error for a process that exited without a ready line, given its last stderr lines. */
  onExited: (stderrTail: string[]) => EdgeechoError;
}

/** Reads whole lines appended to a file since the last call. */
class LineFollower {
  private offset = 0;
  private partial = '';

  constructor(private readonly path: string) {}

  read(): string[] {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return [];
    }
    const chunks: Buffer[] = [];
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        chunks.push(Buffer.from(buf.subarray(0, n)));
      }
    } finally {
      closeSync(fd);
    }
    const lines = (this.partial + Buffer.concat(chunks).toString('utf8')).split('\n');
    this.partial = lines.pop() ?? '';
    return lines;
  }
}

const stderrTail = (path: string): string[] => tailLines(path, STDERR_TAIL_LINES).split('\n').filter((l) => l.trim());

export function waitForReadyLine(options: ReadyLineOptions): Promise<ReadyInfo> {
  const { name, timeoutMs, signal } = options;
  signal?.throwIfAborted();
  const follower = new LineFollower(options.stdoutPath);
  return new Promise<ReadyInfo>((resolve, reject) => {
    let watcher: FSWatcher | null = null;
    let settled = false;
    const finish = (error: Error | null, info?: ReadyInfo): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(reread);
      watcher?.close();
      signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(info!);
    };
    const scan = (): boolean => {
      for (const line of follower.read()) {
        const event = parseEventLine(line);
        if (event?.event === 'ready') {
          finish(null, event);
          return true;
        }
      }
      return false;
    };
    const onAbort = (): void => finish(new EdgeechoError('CANCELLED', `waiting for ${name} to be ready: cancelled`));
    const timer = setTimeout(() => {
      if (scan()) return;
      const tail = stderrTail(options.stderrPath);
      finish(
        new EdgeechoError(
          'TIMEOUT',
          `${name} printed no ready line within ${timeoutMs} ms (EDGEECHO_READY_TIMEOUT_MS)${tail.length ? `; last stderr:\n${tail.join('\n')}` : '; no stderr output'}`,
          { container: name, timeout_ms: timeoutMs, stderr: tail },
        ),
      );
    }, timeoutMs);
    const reread = setInterval(scan, READY_REREAD_MS);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      watcher = watch(options.stdoutPath, { persistent: false }, () => scan());
      watcher.on('error', () => undefined);
    } catch {
      // No inotify (or its watch limit reached): the re-read above still finds the line.
    }
    void options.exited.then(() => {
      if (!scan()) finish(options.onExited(stderrTail(options.stderrPath)));
    });
    scan();
  });
}

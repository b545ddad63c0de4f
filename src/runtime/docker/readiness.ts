/**
 * Waits for an emulator's ready line. The watch is opened (docker attach) BEFORE the container starts: an
 * emulator may print its ready line within milliseconds, and a follow opened after start could miss it.
 * The watch ends with the first of: a ready line (resolve), the output ending because the container exited,
 * the timeout, or the caller's signal; the last stderr lines go into the error so a failure explains itself.
 */
import { EdgeechoError } from '../../../protocol/errors.js';
import type { ReadyInfo } from '../driver.js';
import { parseEventLine } from '../emulator-lines.js';
import { LineSplitter, OutputDemuxer } from './output.js';

export const STDERR_TAIL_LINES = 20;

export interface OutputSource {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  destroy(): void;
}

export type ReadyOutcome =
  | { kind: 'ready'; info: ReadyInfo }
  | { kind: 'ended'; stderrTail: string[]; stdoutTail: string[] }
  | { kind: 'error'; error: Error; stderrTail: string[] };

/** Reads one container's output until ready or end; `outcome` settles once. */
export class ReadyWatch {
  readonly outcome: Promise<ReadyOutcome>;
  private readonly stderrTail: string[] = [];
  private readonly stdoutTail: string[] = [];
  private settle!: (outcome: ReadyOutcome) => void;
  private settled = false;

  /** `parked`: a parked line (emulators/CONTRACT.md "Parking") settles the watch like a ready line. */
  constructor(
    private readonly source: OutputSource,
    parked = false,
  ) {
    this.outcome = new Promise((resolve) => (this.settle = resolve));
    const stdout = new LineSplitter((line) => {
      const event = parseEventLine(line);
      if (event?.event === 'ready' || (parked && event?.event === 'parked')) this.finish({ kind: 'ready', info: event });
      else this.remember(this.stdoutTail, line);
    });
    const stderr = new LineSplitter((line) => this.remember(this.stderrTail, line));
    const demux = new OutputDemuxer((stream, data) => (stream === 'stdout' ? stdout : stderr).push(data));
    source.on('data', (chunk: Buffer) => demux.push(chunk));
    const ended = (): void => {
      stdout.end();
      stderr.end();
      this.finish({ kind: 'ended', stderrTail: [...this.stderrTail], stdoutTail: [...this.stdoutTail] });
    };
    source.on('end', ended);
    source.on('close', ended);
    source.on('error', (error: Error) => this.finish({ kind: 'error', error, stderrTail: [...this.stderrTail] }));
  }

  get stderr(): string[] {
    return [...this.stderrTail];
  }

  private remember(tail: string[], line: string): void {
    if (!line.trim()) return;
    tail.push(line);
    if (tail.length > STDERR_TAIL_LINES) tail.shift();
  }

  private finish(outcome: ReadyOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(outcome);
    // Output after ready goes to the engine's log; the stats line is read from there at teardown.
    this.source.destroy();
  }

  close(): void {
    this.finish({ kind: 'ended', stderrTail: [...this.stderrTail], stdoutTail: [...this.stdoutTail] });
  }
}

/** Waits for the watch within timeoutMs; `onEnded` builds the error once the container's output ended. */
export async function awaitReady(
  watch: ReadyWatch,
  options: { name: string; timeoutMs: number; signal?: AbortSignal; onEnded: (stderrTail: string[]) => Promise<EdgeechoError> },
): Promise<ReadyInfo> {
  const { name, timeoutMs, signal } = options;
  signal?.throwIfAborted();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<'timeout' | 'aborted'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
    onAbort = () => resolve('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const outcome = await Promise.race([watch.outcome, deadline]);
    if (outcome === 'aborted') {
      watch.close();
      throw new EdgeechoError('CANCELLED', `waiting for ${name} to be ready: cancelled`);
    }
    if (outcome === 'timeout') {
      const tail = watch.stderr;
      watch.close();
      throw new EdgeechoError(
        'TIMEOUT',
        `${name} printed no ready line within ${timeoutMs} ms (EDGEECHO_READY_TIMEOUT_MS)${tail.length ? `; last stderr:\n${tail.join('\n')}` : '; no stderr output'}`,
        { container: name, timeout_ms: timeoutMs, stderr: tail },
      );
    }
    if (outcome.kind === 'ready') return outcome.info;
    if (outcome.kind === 'error') {
      throw new EdgeechoError('RUNTIME_UNAVAILABLE', `reading the output of ${name} failed before its ready line: ${outcome.error.message}`, {
        container: name,
        stderr: outcome.stderrTail,
      });
    }
    throw await options.onEnded(outcome.stderrTail);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

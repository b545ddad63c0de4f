/**
 * A container's output as the engine sends it on attach and logs (no TTY): frames of an 8-byte header
 * (stream type 1 = stdout, 2 = stderr; then a 4-byte BE length) and the bytes. Pure, so it is tested without
 * an engine. The emulators speak one JSON object per stdout line; their logs go to stderr.
 */

export { findStatsLine, parseEventLine } from '../emulator-lines.js';

export type OutputStream = 'stdout' | 'stderr';

export class OutputDemuxer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onData: (stream: OutputStream, data: Buffer) => void) {}

  push(chunk: Buffer): void {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      // 0 is stdin echoed back; treat it as stdout like the engine's own CLI does
      const stream: OutputStream = buf[0] === 2 ? 'stderr' : 'stdout';
      this.onData(stream, buf.subarray(8, 8 + size));
      buf = buf.subarray(8 + size);
    }
    this.pending = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
  }
}

/** Splits bytes into lines; a line longer than maxLineBytes is cut there so one runaway line cannot grow memory. */
export class LineSplitter {
  private partial = '';

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLineBytes = 64 * 1024,
  ) {}

  push(data: Buffer | string): void {
    const text = this.partial + data.toString();
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.onLine(line.replace(/\r$/, ''));
    if (this.partial.length > this.maxLineBytes) {
      this.onLine(this.partial);
      this.partial = '';
    }
  }

  end(): void {
    if (this.partial) this.onLine(this.partial);
    this.partial = '';
  }
}

/** Splits a demuxed log dump (as `logs` returns it) into its stdout and stderr text. */
export function demuxAll(raw: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  // A TTY container's log is not framed; a first byte other than 0..2 with zero padding means raw text.
  if (raw.length >= 8 && raw[0]! <= 2 && raw[1] === 0 && raw[2] === 0 && raw[3] === 0) {
    new OutputDemuxer((stream, data) => (stream === 'stderr' ? err : out).push(Buffer.from(data))).push(raw);
  } else out.push(raw);
  return { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

/** A log dump as `logs` hands it over: stderr, then stdout (the stats line is the emulator's last stdout line). */
export function logText(raw: unknown): string {
  const { stdout, stderr } = demuxAll(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)));
  return stderr ? `${stderr.replace(/\n?$/, '\n')}${stdout}` : stdout;
}

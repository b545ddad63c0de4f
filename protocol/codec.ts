/**
 * Frame codec: a 4-byte unsigned big-endian length N, then N bytes of one msgpack value.
 * Pure: no `net`, no timers beyond a microtask. Shared by daemon, client and emulators.
 */
import { C1, Packr } from 'msgpackr';
import { EdgeechoError } from './errors.js';

export const FRAME_HEADER_BYTES = 4;
export const DEFAULT_MAX_FRAME_BYTES = 1_048_576;
/** The largest length the 4-byte header can announce. */
export const MAX_FRAME_LIMIT_BYTES = 0xffff_ffff;

/**
 * Standard msgpack only, so any implementation can read what we write and the reverse:
 * no records/structures, no extension types, undefined written as nil, 64-bit integers as numbers when safe.
 */
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  encodeUndefinedAsNil: true,
  // 'auto' (not in the typings): safe integers as number, larger ones as bigint
  int64AsType: 'auto',
  bundleStrings: false,
  moreTypes: false,
  structuredClone: false,
  variableMapSize: true,
} as unknown as ConstructorParameters<typeof Packr>[0]);

/**
 * msgpackr writes integers beyond 32 bits as float64, which other implementations read as floats
 * (a millisecond timestamp would arrive as 1.7e12 in Python). Such integers are handed to it as
 * bigint, which it writes as int64/uint64. Copies only the containers on the path to a changed value.
 */
function widenIntegers(value: unknown): unknown {
  if (typeof value === 'number') {
    return Number.isInteger(value) && (value > 0xffff_ffff || value < -0x8000_0000) && Number.isSafeInteger(value)
      ? BigInt(value)
      : value;
  }
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      const w = widenIntegers(v);
      if (w !== v) {
        out ??= value.slice();
        out[i] = w;
      }
    }
    return out ?? value;
  }
  let out: Record<string, unknown> | null = null;
  for (const key in value as Record<string, unknown>) {
    const v = (value as Record<string, unknown>)[key];
    const w = widenIntegers(v);
    if (w !== v) {
      out ??= { ...(value as Record<string, unknown>) };
      out[key] = w;
    }
  }
  return out ?? value;
}

/** Rejects what standard msgpack peers cannot send: the reserved 0xc1 byte and extension types. */
function checkStandard(value: unknown, depth = 0): void {
  if (value === null || typeof value !== 'object') return;
  if (value === C1 || value instanceof Date) {
    throw new Error(value === C1 ? 'reserved byte 0xc1' : 'extension type (timestamp) is not allowed');
  }
  if (ArrayBuffer.isView(value)) return;
  if (depth > 64) throw new Error('nesting deeper than 64 levels');
  if (Array.isArray(value)) for (const v of value) checkStandard(v, depth + 1);
  else for (const key in value as Record<string, unknown>) checkStandard((value as Record<string, unknown>)[key], depth + 1);
}

export function packValue(value: unknown): Buffer {
  return packr.pack(widenIntegers(value));
}

/** Decodes one msgpack value that must fill the body exactly; throws on anything non-standard. */
export function unpackValue(body: Uint8Array): unknown {
  const value = packr.unpack(body);
  checkStandard(value);
  return value;
}

/** One whole frame: header plus msgpack body. */
export function encodeFrame(value: unknown): Buffer {
  const body = packValue(value);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/** Header plus an already-encoded msgpack body. */
export function frameBody(body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

export type DecodedFrame =
  | { ok: true; value: unknown; bytes: number }
  | { ok: false; error: EdgeechoError; bytes: number; body: Buffer };

/**
 * Splits a byte stream into frame bodies. Holds at most one partial frame (bounded by maxFrame) whatever the
 * frame count; collects the chunks of a partial frame and joins them once, so a large frame costs O(size).
 * A length of 0 or above maxFrame is fatal: the stream cannot be trusted after it, so `push` throws and the
 * splitter refuses further input. The announced size is never allocated before the bytes arrive.
 */
export class FrameSplitter {
  readonly maxFrame: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: EdgeechoError | null = null;

  constructor(maxFrame = DEFAULT_MAX_FRAME_BYTES) {
    if (!Number.isInteger(maxFrame) || maxFrame < 1 || maxFrame > MAX_FRAME_LIMIT_BYTES) {
      throw new RangeError(`maxFrame must be an integer in 1..${MAX_FRAME_LIMIT_BYTES}, got ${maxFrame}`);
    }
    this.maxFrame = maxFrame;
  }

  /** Bytes held for a frame not yet complete. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Returns the complete frame bodies found so far; throws EdgeechoError on a fatal length. */
  push(chunk: Uint8Array): Buffer[] {
    if (this.failed) throw this.failed;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (buf.length === 0) return [];
    this.chunks.push(buf);
    this.buffered += buf.length;
    const bodies: Buffer[] = [];
    while (this.buffered >= FRAME_HEADER_BYTES) {
      const length = this.peekLength();
      if (length === 0) {
        this.fail(new EdgeechoError('BAD_FRAME', 'frame length 0: every frame carries one msgpack value', { length }));
      }
      if (length > this.maxFrame) {
        this.fail(
          new EdgeechoError(
            'FRAME_TOO_LARGE',
            `frame of ${length} bytes exceeds max_frame ${this.maxFrame} (EDGEECHO_MAX_FRAME)`,
            { length, max_frame: this.maxFrame },
          ),
        );
      }
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      bodies.push(this.take(FRAME_HEADER_BYTES + length).subarray(FRAME_HEADER_BYTES));
    }
    return bodies;
  }

  private fail(error: EdgeechoError): never {
    this.failed = error;
    this.chunks = [];
    this.buffered = 0;
    throw error;
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= FRAME_HEADER_BYTES) return first.readUInt32BE(0);
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    let filled = 0;
    for (const c of this.chunks) {
      const n = Math.min(c.length, FRAME_HEADER_BYTES - filled);
      c.copy(header, filled, 0, n);
      filled += n;
      if (filled === FRAME_HEADER_BYTES) break;
    }
    return header.readUInt32BE(0);
  }

  /** Removes exactly n bytes from the front; copies only when the frame spans chunks. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const want = n - filled;
      if (c.length <= want) {
        c.copy(out, filled);
        filled += c.length;
        this.chunks.shift();
      } else {
        c.copy(out, filled, 0, want);
        this.chunks[0] = c.subarray(want);
        filled += want;
      }
    }
    return out;
  }
}

/**
 * Splits and decodes. A body that is not valid msgpack yields `{ok: false}` and decoding goes on: the length
 * prefix keeps the stream in sync. Fatal lengths throw from `push` as in FrameSplitter.
 */
export class FrameDecoder {
  private readonly splitter: FrameSplitter;

  constructor(maxFrame = DEFAULT_MAX_FRAME_BYTES) {
    this.splitter = new FrameSplitter(maxFrame);
  }

  get maxFrame(): number {
    return this.splitter.maxFrame;
  }

  get pendingBytes(): number {
    return this.splitter.pendingBytes;
  }

  push(chunk: Uint8Array): DecodedFrame[] {
    return this.splitter.push(chunk).map((body) => decodeBody(body));
  }
}

export function decodeBody(body: Buffer): DecodedFrame {
  const bytes = FRAME_HEADER_BYTES + body.length;
  try {
    return { ok: true, value: unpackValue(body), bytes };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      bytes,
      body,
      error: new EdgeechoError('BAD_FRAME', `frame body of ${body.length} bytes is not valid msgpack: ${reason}`),
    };
  }
}

/** The part of a Writable the encoder needs; a net.Socket, a TLS socket or a test double fits. */
export interface FrameSink {
  write(chunk: Buffer, cb?: (err?: Error | null) => void): boolean;
  once(event: 'drain', listener: () => void): unknown;
  readonly writableLength?: number;
  readonly destroyed?: boolean;
}

export interface FrameWriterOptions {
  /** Bytes of coalesced frames gathered before a write is forced (default 64 KiB). */
  coalesceBytes?: number;
}

/**
 * Coalesces small frames into one write per microtask (or per coalesceBytes) and honours backpressure:
 * `send` returns false once the sink has refused a write, and `drained()` resolves when it asks for more.
 * Producers that ignore the return value are bounded by the owner, who can read `bufferedBytes`.
 */
export class FrameWriter {
  private queue: Buffer[] = [];
  private queued = 0;
  private scheduled = false;
  private blocked = false;
  private waiters: Array<() => void> = [];
  private readonly coalesceBytes: number;

  constructor(
    private readonly sink: FrameSink,
    options: FrameWriterOptions = {},
  ) {
    this.coalesceBytes = options.coalesceBytes ?? 65_536;
  }

  /** Bytes held here plus those the sink holds unsent. */
  get bufferedBytes(): number {
    return this.queued + (this.sink.writableLength ?? 0);
  }

  get writable(): boolean {
    return !this.blocked;
  }

  send(value: unknown): boolean {
    return this.sendRaw(encodeFrame(value));
  }

  /** Sends bytes that already hold whole frames (e.g. relayed without decoding). */
  sendRaw(frames: Buffer): boolean {
    if (this.sink.destroyed) return false;
    this.queue.push(frames);
    this.queued += frames.length;
    if (this.queued >= this.coalesceBytes) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
    return !this.blocked;
  }

  flush(): void {
    this.scheduled = false;
    if (this.queued === 0 || this.sink.destroyed) {
      this.queue = [];
      this.queued = 0;
      return;
    }
    const data = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue, this.queued);
    this.queue = [];
    this.queued = 0;
    if (!this.sink.write(data) && !this.blocked) {
      this.blocked = true;
      this.sink.once('drain', () => {
        this.blocked = false;
        const waiters = this.waiters;
        this.waiters = [];
        for (const w of waiters) w();
      });
    }
  }

  /** Resolves at once when writable, else on the sink's next drain. */
  drained(): Promise<void> {
    if (!this.blocked) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

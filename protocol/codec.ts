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
 * no records/structures, no extension types, undefined left out of maps (nil elsewhere), 64-bit integers as
 * numbers when safe.
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
  // "undefined is never sent": a map field holding undefined is left out rather than written as nil
  skipValues: [undefined],
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
  /** Bytes of chunks[0] already consumed: avoids a subarray per frame when many frames share a chunk. */
  private head = 0;
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

  /** The fatal error once a bad length was seen, else null. */
  get error(): EdgeechoError | null {
    return this.failed;
  }

  /**
   * Returns the complete frame bodies found so far; throws EdgeechoError on a fatal length (bodies before the
   * bad header in the same chunk are dropped: use `forEachFrame` to receive them first).
   */
  push(chunk: Uint8Array): Buffer[] {
    const bodies: Buffer[] = [];
    this.forEachFrame(chunk, (body) => bodies.push(body));
    return bodies;
  }

  /**
   * Calls onBody for every complete frame body in order, then throws EdgeechoError if a fatal length follows
   * them. Bodies may share memory with the chunk: copy one before keeping it past the next push.
   */
  forEachFrame(chunk: Uint8Array, onBody: (body: Buffer) => void): void {
    if (this.failed) throw this.failed;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (buf.length === 0) return;
    if (this.buffered === 0) {
      this.scanSingle(buf, onBody);
      return;
    }
    this.chunks.push(buf);
    this.buffered += buf.length;
    while (this.buffered >= FRAME_HEADER_BYTES) {
      const length = this.checkLength(this.peekLength());
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      onBody(this.take(FRAME_HEADER_BYTES + length).subarray(FRAME_HEADER_BYTES));
      // the remainder may sit alone in one chunk again: take the fast path for it
      if (this.chunks.length === 1) {
        const rest = this.head === 0 ? this.chunks[0]! : this.chunks[0]!.subarray(this.head);
        this.chunks = [];
        this.head = 0;
        this.buffered = 0;
        this.scanSingle(rest, onBody);
        return;
      }
    }
  }

  /** The common case: nothing pending, so frames are cut straight out of this chunk without copying. */
  private scanSingle(buf: Buffer, onBody: (body: Buffer) => void): void {
    let offset = 0;
    const end = buf.length;
    while (end - offset >= FRAME_HEADER_BYTES) {
      const length = this.checkLength(buf.readUInt32BE(offset));
      if (end - offset - FRAME_HEADER_BYTES < length) break;
      const start = offset + FRAME_HEADER_BYTES;
      offset = start + length;
      onBody(buf.subarray(start, offset));
    }
    if (offset < end) {
      this.chunks.push(offset === 0 ? buf : buf.subarray(offset));
      this.buffered = end - offset;
    }
  }

  private checkLength(length: number): number {
    if (length === 0) {
      this.fail(new EdgeechoError('BAD_FRAME', 'frame length 0: every frame carries one msgpack value', { length }));
    }
    if (length > this.maxFrame) {
      this.fail(
        new EdgeechoError('FRAME_TOO_LARGE', `frame of ${length} bytes exceeds max_frame ${this.maxFrame} (EDGEECHO_MAX_FRAME)`, {
          length,
          max_frame: this.maxFrame,
        }),
      );
    }
    return length;
  }

  private fail(error: EdgeechoError): never {
    this.failed = error;
    this.chunks = [];
    this.head = 0;
    this.buffered = 0;
    throw error;
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length - this.head >= FRAME_HEADER_BYTES) return first.readUInt32BE(this.head);
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    let filled = 0;
    for (let i = 0; filled < FRAME_HEADER_BYTES; i++) {
      const c = this.chunks[i]!;
      const from = i === 0 ? this.head : 0;
      const n = Math.min(c.length - from, FRAME_HEADER_BYTES - filled);
      c.copy(header, filled, from, from + n);
      filled += n;
    }
    return header.readUInt32BE(0);
  }

  /** Removes exactly n bytes from the front; copies only when the frame spans chunks. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    const available = first.length - this.head;
    if (available >= n) {
      const out = first.subarray(this.head, this.head + n);
      if (available === n) {
        this.chunks.shift();
        this.head = 0;
      } else this.head += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const left = c.length - this.head;
      const want = n - filled;
      if (left <= want) {
        c.copy(out, filled, this.head);
        filled += left;
        this.chunks.shift();
        this.head = 0;
      } else {
        c.copy(out, filled, this.head, this.head + want);
        this.head += want;
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

const DEFAULT_COALESCE_BYTES = 65_536;

/**
 * Coalesces small frames into one write per microtask (or per coalesceBytes) and honours backpressure:
 * `send` returns false once the sink has refused a write, and `drained()` resolves when it asks for more.
 * Producers that ignore the return value are bounded by the owner, who can read `bufferedBytes`.
 *
 * Frames are copied once, straight into a batch slab; a flush hands the sink a view of the filled part and
 * the next frames go to the rest of the slab, so a burst of small frames costs one allocation per slab.
 */
export class FrameWriter {
  private slab: Buffer = EMPTY;
  private batchStart = 0;
  private batchEnd = 0;
  private scheduled = false;
  private blocked = false;
  private waiters: Array<() => void> = [];
  private readonly coalesceBytes: number;
  private readonly flushTask = (): void => this.flush();

  constructor(
    private readonly sink: FrameSink,
    options: FrameWriterOptions = {},
  ) {
    this.coalesceBytes = options.coalesceBytes ?? DEFAULT_COALESCE_BYTES;
  }

  /** Bytes held here plus those the sink holds unsent. */
  get bufferedBytes(): number {
    return this.batchEnd - this.batchStart + (this.sink.writableLength ?? 0);
  }

  get writable(): boolean {
    return !this.blocked;
  }

  send(value: unknown): boolean {
    return this.sendBody(packValue(value));
  }

  /** Sends one frame around an already-encoded msgpack body. */
  sendBody(body: Uint8Array): boolean {
    if (this.sink.destroyed) return false;
    const need = FRAME_HEADER_BYTES + body.length;
    const at = this.reserve(need);
    this.slab.writeUInt32BE(body.length, at);
    this.slab.set(body, at + FRAME_HEADER_BYTES);
    return this.queued();
  }

  /** Sends one frame whose body is the concatenation of already-encoded msgpack pieces (hot paths). */
  sendBodyParts(parts: readonly Uint8Array[]): boolean {
    if (this.sink.destroyed) return false;
    let length = 0;
    for (const p of parts) length += p.length;
    let at = this.reserve(FRAME_HEADER_BYTES + length);
    this.slab.writeUInt32BE(length, at);
    at += FRAME_HEADER_BYTES;
    for (const p of parts) {
      this.slab.set(p, at);
      at += p.length;
    }
    return this.queued();
  }

  /** Sends bytes that already hold whole frames (e.g. relayed without decoding). */
  sendRaw(frames: Buffer): boolean {
    if (this.sink.destroyed) return false;
    if (frames.length >= this.coalesceBytes) {
      // large: write as is rather than copy, after what is already batched to keep the order
      this.flush();
      this.write(frames);
      return !this.blocked;
    }
    const at = this.reserve(frames.length);
    frames.copy(this.slab, at);
    return this.queued();
  }

  flush(): void {
    this.scheduled = false;
    if (this.batchEnd === this.batchStart) return;
    const data = this.slab.subarray(this.batchStart, this.batchEnd);
    this.batchStart = this.batchEnd;
    if (this.sink.destroyed) return;
    this.write(data);
  }

  /** Resolves at once when writable, else on the sink's next drain. */
  drained(): Promise<void> {
    if (!this.blocked) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Returns the offset in the slab where n bytes may be written, starting a new slab when needed. */
  private reserve(n: number): number {
    if (this.slab.length - this.batchEnd < n) {
      const pending = this.batchEnd - this.batchStart;
      // start small and double: an idle connection keeps a small slab, a busy one grows to coalesceBytes
      const grown = Math.min(this.coalesceBytes, Math.max(INITIAL_SLAB_BYTES, this.slab.length * 2));
      const next = Buffer.allocUnsafe(Math.max(grown, pending + n));
      // bytes already handed to the sink stay in the old slab; only the unflushed batch moves
      if (pending > 0) this.slab.copy(next, 0, this.batchStart, this.batchEnd);
      this.slab = next;
      this.batchStart = 0;
      this.batchEnd = pending;
    }
    const at = this.batchEnd;
    this.batchEnd += n;
    return at;
  }

  private queued(): boolean {
    if (this.batchEnd - this.batchStart >= this.coalesceBytes) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushTask);
    }
    return !this.blocked;
  }

  private write(data: Buffer): void {
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
}

const EMPTY = Buffer.alloc(0);
const INITIAL_SLAB_BYTES = 2048;

/**
 * The data frame {type:"data", seq, ts, payload} on the hot path. The probe writes it from a fixed layout
 * (seq always uint32, ts always uint64: valid standard msgpack, just not the shortest form) so a batch is a
 * template copy plus a few patched bytes; receivers read the same layout without a general msgpack decode and
 * fall back to the codec for any other encoding of the same map (another implementation, other key order).
 *
 * Checksum: CRC-32 (IEEE 802.3, as zlib's crc32) over all payload bytes concatenated in seq order, as an
 * unsigned 32-bit integer.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import { FRAME_HEADER_BYTES, unpackValue } from './codec.js';

const PREFIX = Buffer.from([0x84, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa4, 0x64, 0x61, 0x74, 0x61]); // map4 "type" "data"
const KEY_SEQ = Buffer.from([0xa3, 0x73, 0x65, 0x71]);
const KEY_TS = Buffer.from([0xa2, 0x74, 0x73]);
const KEY_PAYLOAD = Buffer.from([0xa7, 0x70, 0x61, 0x79, 0x6c, 0x6f, 0x61, 0x64]);

const OFF_SEQ_KEY = PREFIX.length; // 11
const OFF_SEQ = OFF_SEQ_KEY + KEY_SEQ.length; // 15: 0xce + u32
const OFF_TS_KEY = OFF_SEQ + 5; // 20
const OFF_TS = OFF_TS_KEY + KEY_TS.length; // 23: 0xcf + u64
const OFF_PAYLOAD_KEY = OFF_TS + 9; // 32
const OFF_PAYLOAD_HEADER = OFF_PAYLOAD_KEY + KEY_PAYLOAD.length; // 40

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** Raw CRC register update (no pre/post inversion). */
function crcRegister(reg: number, buf: Uint8Array, start: number, end: number): number {
  let c = reg;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return c;
}

/** Slicing-by-8 tables: T<k>[n] is the register after byte n followed by k zero bytes. */
function nextSlice(prev: Int32Array): Int32Array {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) t[n] = (prev[n]! >>> 8) ^ CRC_TABLE[prev[n]! & 0xff]!;
  return t;
}
const T0 = CRC_TABLE;
const T1 = nextSlice(T0);
const T2 = nextSlice(T1);
const T3 = nextSlice(T2);
const T4 = nextSlice(T3);
const T5 = nextSlice(T4);
const T6 = nextSlice(T5);
const T7 = nextSlice(T6);

/** The raw register update eight bytes per step (three times the byte loop's speed on 64-byte payloads). */
function crcSliced(reg: number, buf: Uint8Array, start: number, end: number): number {
  let c = reg;
  let i = start;
  for (const last = end - 8; i <= last; i += 8) {
    const a = c ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    const b = buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24);
    c = T7[a & 0xff]! ^ T6[(a >>> 8) & 0xff]! ^ T5[(a >>> 16) & 0xff]! ^ T4[a >>> 24]! ^ T3[b & 0xff]! ^ T2[(b >>> 8) & 0xff]! ^ T1[(b >>> 16) & 0xff]! ^ T0[b >>> 24]!;
  }
  for (; i < end; i++) c = T0[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return c;
}

/** Continues a CRC-32 over buf[start, end). A JS loop beats the native call's overhead on small payloads. */
export function crc32Update(crc: number, buf: Buffer, start: number, end: number): number {
  if (end - start >= 512) return zlibCrc32(buf.subarray(start, end), crc);
  return ~crcSliced(~crc, buf, start, end) >>> 0;
}

/** Payload bytes gathered before one zlib crc32 call. */
const CHECKSUM_GATHER_BYTES = 64 * 1024;
/** Payloads from this size are summed in place by zlib rather than gathered. */
const CHECKSUM_IN_PLACE_BYTES = 512;

/**
 * The running CRC-32 of a stream's payloads (the end frame's checksum), for a reader that sees many small ones per
 * read: each is copied into a scratch buffer four bytes at a time and zlib's crc32 (SIMD) runs once over the
 * scratch. On 64-byte payloads that costs about half of crc32Update's table loop per frame.
 *
 * With `keep`, the gathered bytes are the reader's too (`take()`): the payloads alone, contiguous and in stream
 * order, as a capture writes them, for no copy beyond the one the checksum needs anyway.
 */
export class PayloadChecksum {
  private crc = 0;
  private scratch: Buffer;
  private scratchView: DataView;
  private used = 0;
  private kept: Buffer[] = [];
  private readonly gatherBytes: number;

  constructor(
    private readonly keep = false,
    gatherBytes = CHECKSUM_GATHER_BYTES,
    /** The bytes added lie in memory the reader reuses (a read ring): kept ones are copied, never kept in place. */
    private readonly borrowed = false,
  ) {
    // room for any payload small enough to be gathered
    this.gatherBytes = Math.max(gatherBytes, CHECKSUM_IN_PLACE_BYTES);
    this.scratch = Buffer.allocUnsafe(this.gatherBytes);
    this.scratchView = new DataView(this.scratch.buffer, this.scratch.byteOffset, this.gatherBytes);
  }

  /** The bytes view[start, end), next in stream order. */
  add(view: DataView, start: number, end: number): void {
    const n = end - start;
    if (this.used + n > this.scratch.length || n >= CHECKSUM_IN_PLACE_BYTES) {
      this.flush();
      if (n >= CHECKSUM_IN_PLACE_BYTES) {
        const bytes = Buffer.from(view.buffer, view.byteOffset + start, n);
        this.crc = zlibCrc32(bytes, this.crc);
        if (this.keep) this.kept.push(this.borrowed ? Buffer.from(bytes) : bytes);
        return;
      }
    }
    const to = this.scratchView;
    const at = this.used;
    let i = 0;
    for (const last = n - 4; i <= last; i += 4) to.setInt32(at + i, view.getInt32(start + i, true), true);
    for (; i < n; i++) to.setUint8(at + i, view.getUint8(start + i));
    this.used = at + n;
  }

  /** Payload bytes gathered elsewhere (a walk of many frames), next in stream order; with keep, kept as a copy. */
  addGathered(bytes: Buffer): void {
    this.flush();
    this.crc = zlibCrc32(bytes, this.crc);
    if (this.keep) this.kept.push(Buffer.from(bytes));
  }

  /** CRC-32 of every byte added so far (unsigned). */
  get value(): number {
    this.flush();
    return this.crc;
  }

  /** With keep: the bytes added since the last take, in order, as one or more buffers (now the caller's). */
  take(): Buffer[] {
    this.flush();
    const kept = this.kept;
    this.kept = [];
    return kept;
  }

  private flush(): void {
    if (this.used === 0) return;
    const bytes = this.scratch.subarray(0, this.used);
    this.crc = zlibCrc32(bytes, this.crc);
    this.used = 0;
    if (!this.keep) return;
    // the gathered bytes are handed out: later ones go to the rest of the scratch, or a new one
    this.kept.push(bytes);
    // (the rest must hold any payload small enough to be gathered)
    const rest = this.scratch.length - bytes.length;
    this.scratch = rest >= Math.max(this.gatherBytes / 4, CHECKSUM_IN_PLACE_BYTES) ? this.scratch.subarray(bytes.length) : Buffer.allocUnsafe(this.gatherBytes);
    this.scratchView = new DataView(this.scratch.buffer, this.scratch.byteOffset, this.scratch.length);
  }
}

export interface DataFrame {
  seq: number;
  ts: number;
  /** payload bytes are body[payloadStart, payloadEnd) */
  body: Buffer;
  payloadStart: number;
  payloadEnd: number;
}

function binHeader(n: number): Buffer {
  if (n < 0x100) return Buffer.from([0xc4, n]);
  if (n < 0x10000) return Buffer.from([0xc5, n >>> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = 0xc6;
  b.writeUInt32BE(n, 1);
  return b;
}

/**
 * Writes batches of data frames for one probe. Payload i is a fixed pseudo-random block whose first
 * min(4, size) bytes carry seq (big-endian, truncated), so corruption and reordering change the checksum.
 * The checksum of the constant tail is applied as a precomputed linear map (CRC is affine in its register),
 * so the probe pays a few table lookups per frame instead of a pass over the payload.
 */
export class DataFrameEncoder {
  readonly frameBytes: number;
  readonly payloadBytes: number;
  private readonly template: Buffer;
  private readonly payloadOffset: number;
  private readonly seqBytes: number;
  private readonly tail: Int32Array[];
  private readonly tailConst: number;
  private batchTemplate: Buffer = Buffer.alloc(0);
  private crcReg = ~0;

  constructor(payloadBytes: number) {
    this.payloadBytes = payloadBytes;
    const header = binHeader(payloadBytes);
    const bodyLength = OFF_PAYLOAD_HEADER + header.length + payloadBytes;
    this.frameBytes = FRAME_HEADER_BYTES + bodyLength;
    const t = Buffer.alloc(this.frameBytes);
    t.writeUInt32BE(bodyLength, 0);
    let o = FRAME_HEADER_BYTES;
    for (const part of [PREFIX, KEY_SEQ, Buffer.from([0xce, 0, 0, 0, 0]), KEY_TS, Buffer.from([0xcf, 0, 0, 0, 0, 0, 0, 0, 0]), KEY_PAYLOAD, header]) {
      part.copy(t, o);
      o += part.length;
    }
    this.payloadOffset = o;
    let x = 0x9e3779b9;
    for (let i = 0; i < payloadBytes; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      t[o + i] = x & 0xff;
    }
    this.template = t;
    this.seqBytes = Math.min(4, payloadBytes);
    const suffixStart = o + this.seqBytes;
    const suffixEnd = o + payloadBytes;
    this.tailConst = crcRegister(0, t, suffixStart, suffixEnd);
    this.tail = [0, 1, 2, 3].map((j) => {
      const table = new Int32Array(256);
      for (let v = 0; v < 256; v++) table[v] = crcRegister(v << (8 * j), t, suffixStart, suffixEnd) ^ this.tailConst;
      return table;
    });
  }

  /** CRC-32 of every payload written so far. */
  get checksum(): number {
    return ~this.crcReg >>> 0;
  }

  /** `n` frames from seq `first`, all stamped `ts` (ms since the epoch). */
  batch(first: number, n: number, ts: number): Buffer {
    const size = this.frameBytes;
    if (this.batchTemplate.length < n * size) {
      this.batchTemplate = Buffer.allocUnsafe(n * size);
      for (let i = 0; i < n; i++) this.template.copy(this.batchTemplate, i * size);
    }
    const out = Buffer.allocUnsafe(n * size);
    this.batchTemplate.copy(out, 0, 0, n * size);
    const tsHigh = Math.floor(ts / 0x1_0000_0000);
    const tsLow = ts >>> 0;
    const [t0, t1, t2, t3] = this.tail as [Int32Array, Int32Array, Int32Array, Int32Array];
    const seqBytes = this.seqBytes;
    let reg = this.crcReg;
    for (let i = 0; i < n; i++) {
      const seq = first + i;
      const base = i * size;
      out.writeUInt32BE(seq, base + FRAME_HEADER_BYTES + OFF_SEQ + 1);
      out.writeUInt32BE(tsHigh, base + FRAME_HEADER_BYTES + OFF_TS + 1);
      out.writeUInt32BE(tsLow, base + FRAME_HEADER_BYTES + OFF_TS + 5);
      const p = base + this.payloadOffset;
      for (let k = 0; k < seqBytes; k++) {
        const byte = (seq >>> (8 * (seqBytes - 1 - k))) & 0xff;
        out[p + k] = byte;
        reg = CRC_TABLE[(reg ^ byte) & 0xff]! ^ (reg >>> 8);
      }
      reg = t0[reg & 0xff]! ^ t1[(reg >>> 8) & 0xff]! ^ t2[(reg >>> 16) & 0xff]! ^ t3[reg >>> 24]! ^ this.tailConst;
    }
    this.crcReg = reg;
    return out;
  }
}

const SEQ_AT = OFF_SEQ + 1;
const TS_AT = OFF_TS + 1;
// The fixed bytes of the probe's layout, as big-endian 32-bit words at body offsets 0, 4, 8, 12 (map4 "type" "data"
// "seq" 0xce), 20 ("ts" 0xcf), 32 and 36 ("payload").
const WORD_0 = 0x84a47479 | 0;
const WORD_4 = 0x7065a464 | 0;
const WORD_8 = 0x617461a3 | 0;
const WORD_12 = 0x736571ce | 0;
const WORD_TS = 0xa27473cf | 0;
const WORD_32 = 0xa7706179 | 0;
const WORD_36 = 0x6c6f6164 | 0;

/** The probe's layout for a reader that checks it elsewhere (protocol/wasm-frame-walk.ts): the same words and offsets. */
export const PROBE_LAYOUT = {
  /** [body offset, big-endian word] pairs a body in this layout has. */
  words: [[0, WORD_0], [4, WORD_4], [8, WORD_8], [12, WORD_12], [OFF_TS_KEY, WORD_TS], [OFF_PAYLOAD_KEY, WORD_32], [OFF_PAYLOAD_KEY + 4, WORD_36]] as ReadonlyArray<readonly [number, number]>,
  /** The seq's four bytes (big-endian). */
  seqAt: SEQ_AT,
  /** The payload's bin marker (0xc4, 0xc5 or 0xc6) and its length after it. */
  payloadHeaderAt: OFF_PAYLOAD_HEADER,
} as const;

/**
 * Where the payload of a data frame body at view[body, body+length) starts, when the body is in the probe's layout
 * (any bin width); -1 for anything else, which the caller reads with readDataFrame. A reader walking a whole read
 * calls this per frame: seven word compares instead of forty byte compares.
 */
export function probePayloadStart(view: DataView, body: number, length: number): number {
  if (
    length < OFF_PAYLOAD_HEADER + 2 ||
    view.getInt32(body) !== WORD_0 || view.getInt32(body + 4) !== WORD_4 || view.getInt32(body + 8) !== WORD_8 ||
    view.getInt32(body + 12) !== WORD_12 || view.getInt32(body + OFF_TS_KEY) !== WORD_TS ||
    view.getInt32(body + OFF_PAYLOAD_KEY) !== WORD_32 || view.getInt32(body + OFF_PAYLOAD_KEY + 4) !== WORD_36
  ) {
    return -1;
  }
  const h = body + OFF_PAYLOAD_HEADER;
  const n = length - OFF_PAYLOAD_HEADER;
  const marker = view.getUint8(h);
  if (marker === 0xc4) return view.getUint8(h + 1) === n - 2 ? h + 2 : -1;
  if (marker === 0xc5) return n >= 3 && view.getUint16(h + 1) === n - 3 ? h + 3 : -1;
  if (marker === 0xc6) return n >= 5 && view.getUint32(h + 1) === n - 5 ? h + 5 : -1;
  return -1;
}

/** seq of a body probePayloadStart accepted. */
export function probeSeq(view: DataView, body: number): number {
  return view.getUint32(body + SEQ_AT);
}

/** ts of a body probePayloadStart accepted. */
export function probeTs(view: DataView, body: number): number {
  return view.getUint32(body + TS_AT) * 0x1_0000_0000 + view.getUint32(body + TS_AT + 4);
}

/** Reads a msgpack integer at `pos`; returns NaN when the byte there does not start one. */
function readInt(buf: Buffer, pos: number): [number, number] {
  const b = buf[pos]!;
  if (b <= 0x7f) return [b, pos + 1];
  switch (b) {
    case 0xcc: return [buf[pos + 1]!, pos + 2];
    case 0xcd: return [buf.readUInt16BE(pos + 1), pos + 3];
    case 0xce: return [buf.readUInt32BE(pos + 1), pos + 5];
    case 0xcf: return [buf.readUInt32BE(pos + 1) * 0x1_0000_0000 + buf.readUInt32BE(pos + 5), pos + 9];
    default: return [NaN, pos];
  }
}

function matches(buf: Buffer, pos: number, bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (buf[pos + i] !== bytes[i]) return false;
  return true;
}

/** True when buf[start, start+length) is a data frame body in the fixed layout's key order. */
export function isFastDataBody(buf: Buffer, start: number, length: number): boolean {
  return length > OFF_PAYLOAD_HEADER && buf[start] === 0x84 && matches(buf, start, PREFIX);
}

/**
 * The seq of a data frame body in the probe's layout without decoding the rest, or -1 when the body is in
 * another layout (the caller decodes it).
 */
export function peekSeq(buf: Buffer, start: number, length: number): number {
  // The probe's own layout, map4 "type" "data" "seq" 0xce, compared byte by byte: indexed loads are what the JIT
  // makes cheapest, and this runs once per relayed frame (readUInt32BE's checks cost the relay a tenth of its CPU).
  if (
    length > OFF_PAYLOAD_HEADER &&
    buf[start] === 0x84 && buf[start + 1] === 0xa4 && buf[start + 2] === 0x74 && buf[start + 3] === 0x79 &&
    buf[start + 4] === 0x70 && buf[start + 5] === 0x65 && buf[start + 6] === 0xa4 && buf[start + 7] === 0x64 &&
    buf[start + 8] === 0x61 && buf[start + 9] === 0x74 && buf[start + 10] === 0x61 && buf[start + 11] === 0xa3 &&
    buf[start + 12] === 0x73 && buf[start + 13] === 0x65 && buf[start + 14] === 0x71 && buf[start + 15] === 0xce
  ) {
    return ((buf[start + 16]! << 24) | (buf[start + 17]! << 16) | (buf[start + 18]! << 8) | buf[start + 19]!) >>> 0;
  }
  if (!isFastDataBody(buf, start, length) || !matches(buf, start + OFF_SEQ_KEY, KEY_SEQ)) return -1;
  const [seq] = readInt(buf, start + OFF_SEQ);
  return Number.isNaN(seq) ? -1 : seq;
}

/**
 * Reads the data frame body at buf[start, start+length) into `out` (reused: no allocation on the fast path).
 * Returns false when the body is not a data frame; other layouts are decoded with the codec.
 */
export function readDataFrame(buf: Buffer, start: number, length: number, out: DataFrame): boolean {
  const end = start + length;
  // The probe's layout at fixed offsets, read with indexed loads: the consumer's per-frame hot path.
  const s = start;
  if (
    length > OFF_PAYLOAD_HEADER + 1 &&
    buf[s] === 0x84 && buf[s + 1] === 0xa4 && buf[s + 2] === 0x74 && buf[s + 3] === 0x79 &&
    buf[s + 4] === 0x70 && buf[s + 5] === 0x65 && buf[s + 6] === 0xa4 && buf[s + 7] === 0x64 &&
    buf[s + 8] === 0x61 && buf[s + 9] === 0x74 && buf[s + 10] === 0x61 && buf[s + 11] === 0xa3 &&
    buf[s + 12] === 0x73 && buf[s + 13] === 0x65 && buf[s + 14] === 0x71 && buf[s + 15] === 0xce &&
    buf[s + OFF_TS_KEY] === 0xa2 && buf[s + OFF_TS_KEY + 1] === 0x74 && buf[s + OFF_TS_KEY + 2] === 0x73 && buf[s + OFF_TS] === 0xcf &&
    buf[s + 32] === 0xa7 && buf[s + 33] === 0x70 && buf[s + 34] === 0x61 && buf[s + 35] === 0x79 &&
    buf[s + 36] === 0x6c && buf[s + 37] === 0x6f && buf[s + 38] === 0x61 && buf[s + 39] === 0x64 && buf[s + OFF_PAYLOAD_HEADER] === 0xc4 &&
    buf[s + OFF_PAYLOAD_HEADER + 1] === length - OFF_PAYLOAD_HEADER - 2
  ) {
    out.seq = ((buf[s + OFF_SEQ + 1]! << 24) | (buf[s + OFF_SEQ + 2]! << 16) | (buf[s + OFF_SEQ + 3]! << 8) | buf[s + OFF_SEQ + 4]!) >>> 0;
    const high = ((buf[s + OFF_TS + 1]! << 24) | (buf[s + OFF_TS + 2]! << 16) | (buf[s + OFF_TS + 3]! << 8) | buf[s + OFF_TS + 4]!) >>> 0;
    const low = ((buf[s + OFF_TS + 5]! << 24) | (buf[s + OFF_TS + 6]! << 16) | (buf[s + OFF_TS + 7]! << 8) | buf[s + OFF_TS + 8]!) >>> 0;
    out.ts = high * 0x1_0000_0000 + low;
    out.body = buf;
    out.payloadStart = s + OFF_PAYLOAD_HEADER + 2;
    out.payloadEnd = end;
    return true;
  }
  // Other integer widths or a longer bin header, same key order: read field by field.
  if (isFastDataBody(buf, start, length) && matches(buf, start + OFF_SEQ_KEY, KEY_SEQ)) {
    const [seq, afterSeq] = readInt(buf, start + OFF_SEQ);
    if (!Number.isNaN(seq) && matches(buf, afterSeq, KEY_TS)) {
      const [ts, afterTs] = readInt(buf, afterSeq + KEY_TS.length);
      const h = afterTs + KEY_PAYLOAD.length;
      if (!Number.isNaN(ts) && matches(buf, afterTs, KEY_PAYLOAD) && h < end) {
        const marker = buf[h]!;
        let n = -1;
        let p = 0;
        if (marker === 0xc4 && h + 2 <= end) [n, p] = [buf[h + 1]!, h + 2];
        else if (marker === 0xc5 && h + 3 <= end) [n, p] = [buf.readUInt16BE(h + 1), h + 3];
        else if (marker === 0xc6 && h + 5 <= end) [n, p] = [buf.readUInt32BE(h + 1), h + 5];
        if (n >= 0 && p + n === end) {
          out.seq = seq;
          out.ts = ts;
          out.body = buf;
          out.payloadStart = p;
          out.payloadEnd = end;
          return true;
        }
      }
    }
  }
  let value: unknown;
  try {
    value = unpackValue(buf.subarray(start, end));
  } catch {
    return false;
  }
  const v = value as { type?: unknown; seq?: unknown; ts?: unknown; payload?: unknown };
  if (v === null || typeof v !== 'object' || v.type !== 'data') return false;
  const ts = typeof v.ts === 'bigint' ? Number(v.ts) : v.ts;
  if (typeof v.seq !== 'number' || typeof ts !== 'number' || !(v.payload instanceof Uint8Array)) return false;
  out.seq = v.seq;
  out.ts = ts;
  out.body = Buffer.from(v.payload.buffer, v.payload.byteOffset, v.payload.byteLength);
  out.payloadStart = 0;
  out.payloadEnd = v.payload.byteLength;
  return true;
}

/**
 * The JSON form of frames used by `cat`, `encode` and `decode`. msgpack carries two things JSON lacks:
 * binary, written as {"$bin": "<base64>"} both ways, and 64-bit integers, written as JSON numbers when
 * exactly representable and as decimal strings otherwise (so no digit is silently lost).
 */
import { frameBody, type FrameSplitter } from '../../protocol/codec.js';
import type { EdgeechoError } from '../../protocol/errors.js';

export function toJsonValue(value: unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) && BigInt(Number(value)) === value ? Number(value) : value.toString();
  if (value === null || typeof value !== 'object') return value === undefined ? null : value;
  if (ArrayBuffer.isView(value)) return { $bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (Array.isArray(value)) return value.map(toJsonValue);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) out[key] = toJsonValue((value as Record<string, unknown>)[key]);
  return out;
}

/** One output line for a decoded frame; with `raw`, the frame's bytes as hex beside it. */
export function frameLine(value: unknown, raw?: Buffer): string {
  const json = toJsonValue(value);
  return JSON.stringify(raw ? { frame: json, hex: frameBody(raw).toString('hex') } : json);
}

/** One output line for a frame that is not valid msgpack, or a length that ends the stream. */
export function malformedLine(error: { code: string; message: string }, body?: Buffer, fatal = false): string {
  const line: Record<string, unknown> = { kind: 'malformed', error: { code: error.code, message: error.message } };
  if (fatal) line.fatal = true;
  if (body) line.hex = frameBody(body).toString('hex');
  return JSON.stringify(line);
}

/** Parses one JSON line; {"$bin": "<base64>"} becomes bytes. Throws SyntaxError with the parser's reason. */
export function parseJsonLine(line: string): unknown {
  return JSON.parse(line, (_key, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === '$bin' && typeof (v as { $bin: unknown }).$bin === 'string') {
        return Buffer.from((v as { $bin: string }).$bin, 'base64');
      }
    }
    return v;
  });
}

/**
 * Gives requests without an id the next free integer, and moves the counter past ids the input chose,
 * so filled-in ids never collide with explicit ones seen before them.
 */
export class IdFiller {
  private next: number;

  constructor(first = 1) {
    this.next = first;
  }

  /** Mutates and returns the request map; other values pass unchanged. */
  fill<T>(value: T): T {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) return value;
    const map = value as Record<string, unknown>;
    if (!('id' in map)) map.id = this.take();
    else if (typeof map.id === 'number' && Number.isSafeInteger(map.id) && map.id >= this.next) this.next = map.id + 1;
    return value;
  }

  take(): number {
    return this.next++;
  }
}

/**
 * The frames complete in this chunk and, when a fatal length follows them, the error beside them rather than
 * instead of them: a tool showing a stream shows everything up to the point where it broke.
 */
export function splitChunk(splitter: FrameSplitter, chunk: Buffer): { bodies: Buffer[]; error: EdgeechoError | null } {
  const bodies: Buffer[] = [];
  try {
    splitter.forEachFrame(chunk, (body) => bodies.push(body));
    return { bodies, error: null };
  } catch (err) {
    if (err === splitter.error) return { bodies, error: splitter.error };
    throw err;
  }
}

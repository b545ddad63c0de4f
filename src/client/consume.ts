/**
 * Reads the stream at a session's location (protocol/DATA.md): the details frame, data frames {seq, ts, payload}
 * and the end frame {count, checksum}. `consume()` is an async iterator of the data frames that checks sequence
 * continuity and, at the end, the count and CRC-32; a gap, a reorder, a bad checksum or a stream that closes
 * before its end frame throws EdgeechoError DATA_LOSS (after the frames that arrived intact were yielded).
 * `.batches()` gives the same frames several at a time, `.payloads()` only the payload bytes, joined.
 *
 *   for await (const frame of consume(session.location)) use(frame.payload);
 *
 * Frames are parsed in place: a payload is a view into the received chunk (valid for as long as it is kept).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { encodeFrame, FRAME_HEADER_BYTES, unpackValue } from '../../protocol/codec.js';
import { PayloadChecksum, probePayloadStart, probeSeq, probeTs, readDataFrame, type DataFrame } from '../../protocol/data-frame.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { FrameScanner } from '../../protocol/frame-scanner.js';
import { ReadRing, ReadSlab, type ReadMemory } from '../../protocol/read-slab.js';
import { FrameWalk } from '../../protocol/wasm-frame-walk.js';
import { DEFAULT_CONNECT_TIMEOUT_MS } from './transport.js';

/** Largest frame a stream may carry: the emulators' payload limit (16 MiB) plus the map around it. */
export const DEFAULT_STREAM_MAX_FRAME_BYTES = 16 * 1024 * 1024 + 1024;
/** Frames parsed ahead of the reader before the socket is paused (backpressure toward the stream server). */
const QUEUE_HIGH_FRAMES = 8192;
/** payloads(): bytes per step at most (payloads under 512 bytes are joined up to this; larger ones are a step each). */
const PAYLOAD_STEP_BYTES = 256 * 1024;
/** payloads(): steps ahead of the reader before the socket is paused (about a read's worth). */
const QUEUE_HIGH_STEPS = 4;

export interface StreamLocation {
  host: string;
  port: number;
}

/** One data frame. The payload is a view into the received chunk, made on first access. */
export class StreamFrame {
  private view: Buffer | null = null;

  constructor(
    readonly seq: number,
    /** Sender's clock, ms since the epoch. */
    readonly ts: number,
    private readonly body: Buffer,
    private readonly start: number,
    private readonly end: number,
  ) {}

  get payload(): Buffer {
    return (this.view ??= this.body.subarray(this.start, this.end));
  }

  get payloadLength(): number {
    return this.end - this.start;
  }
}

export interface ConsumeOptions {
  connectTimeoutMs?: number;
  /** Closes the connection and rejects the iteration with CANCELLED. */
  signal?: AbortSignal;
  /**
   * Accept a stream joined after its first frame (DATA.md 4): continuity is checked from the first seq received
   * and the checksum, which covers every payload from seq 0, is not checked (summary.checksum_ok stays null).
   */
  allowLateJoin?: boolean;
  maxFrame?: number;
}

export interface ConsumeSummary {
  details: Record<string, unknown> | null;
  frames: number;
  /** Bytes of frames received (length prefixes included), details and end frame too. */
  bytes: number;
  payload_bytes: number;
  first_seq: number | null;
  lost: number;
  out_of_order: number;
  end: { count: number; checksum: number } | null;
  /** CRC-32 of the payloads received, in arrival order. */
  checksum: number;
  checksum_ok: boolean | null;
  complete: boolean;
  /** From the first byte received to the end (or the failure). */
  duration_ms: number;
}

/** Accepts {host, port} or "host:port" ("[::1]:7100" for IPv6). */
export function parseLocation(location: StreamLocation | string): StreamLocation {
  if (typeof location !== 'string') {
    if (!location || typeof location.host !== 'string' || !Number.isInteger(location.port) || location.port < 1 || location.port > 65535) {
      throw new EdgeechoError('BAD_REQUEST', `stream location: expected {host, port} with port 1..65535, got ${JSON.stringify(location)}`);
    }
    return { host: location.host, port: location.port };
  }
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(location.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new EdgeechoError('BAD_REQUEST', `stream location: expected HOST:PORT with port 1..65535, got "${location}"`);
  return { host: (m[1] ?? m[2])!, port };
}

/**
 * The consumer side of one connection to a stream. Iterate it once; `summary` is final once the iteration ended
 * (normally or by throwing).
 */
export class StreamConsumer implements AsyncIterable<StreamFrame> {
  readonly location: StreamLocation;
  readonly summary: ConsumeSummary = {
    details: null,
    frames: 0,
    bytes: 0,
    payload_bytes: 0,
    first_seq: null,
    lost: 0,
    out_of_order: 0,
    end: null,
    checksum: 0,
    checksum_ok: null,
    complete: false,
    duration_ms: 0,
  };
  private readonly options: ConsumeOptions;
  private socket: Socket | null = null;
  /** What the iteration hands out next: frames, or with payloads() payload bytes. */
  private queue: Array<StreamFrame | Buffer> = [];
  private queueHigh = QUEUE_HIGH_FRAMES;
  /** False for payloads(): the payloads are gathered by the checksum, no StreamFrame is made. */
  private keepFrames = true;
  /** payloads(): reads go to its memory and it takes the frames in the probe's layout (see FrameWalk). */
  private walk: FrameWalk | null = null;
  private head = 0;
  private failure: EdgeechoError | null = null;
  private done = false;
  private waiter: (() => void) | null = null;
  private expected = 0;
  private startedAt = 0;
  private checksum = new PayloadChecksum();
  /** The frame readFrame decodes into (reused). */
  private readonly parsed: DataFrame = { seq: 0, ts: 0, body: Buffer.alloc(0), payloadStart: 0, payloadEnd: 0 };
  private iterated = false;
  /** True once the connection to the location was made. */
  connected = false;

  constructor(location: StreamLocation | string, options: ConsumeOptions = {}) {
    this.location = parseLocation(location);
    this.options = options;
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamFrame> {
    return this.iterator<StreamFrame>(false);
  }

  /** The same frames, as many at a time as have arrived: one promise per read instead of one per frame. */
  batches(): AsyncIterable<StreamFrame[]> {
    return { [Symbol.asyncIterator]: () => this.iterator<StreamFrame[]>(true) };
  }

  /**
   * The payload bytes alone, in seq order and checked as the frames are: each step is one or more payloads joined
   * (up to 256 KiB), a read's worth in a few steps and no object per frame. What a capture writes:
   *
   *   for await (const bytes of consume(location).payloads()) out.write(bytes);
   */
  payloads(): AsyncIterable<Buffer> {
    return {
      [Symbol.asyncIterator]: () =>
        this.iterator<Buffer>(false, () => {
          this.keepFrames = false;
          this.queueHigh = QUEUE_HIGH_STEPS;
          this.walk = new FrameWalk();
          // what the JS reader keeps of a read is copied: the walk's read memory is reused
          this.checksum = new PayloadChecksum(true, PAYLOAD_STEP_BYTES, true);
        }),
    };
  }

  private iterator<T extends StreamFrame | StreamFrame[] | Buffer>(batched: boolean, setUp?: () => void): AsyncIterator<T> {
    if (this.iterated) throw new EdgeechoError('CONFLICT', 'a StreamConsumer is iterated once; call consume() again for another connection');
    this.iterated = true;
    setUp?.();
    const opened = this.open();
    let ready = false;
    /** A frame (or batch) already here, else null: the synchronous part of next(). */
    const take = (): IteratorResult<T> | null => {
      if (this.head >= this.queue.length) return null;
      let value: StreamFrame | Buffer | Array<StreamFrame | Buffer>;
      if (batched) {
        value = this.head === 0 ? this.queue : this.queue.slice(this.head);
        this.head = this.queue.length;
      } else {
        value = this.queue[this.head]!;
        this.queue[this.head++] = undefined as never;
      }
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
        if (!this.done) this.socket?.resume();
      }
      return { value: value as T, done: false };
    };
    const wait = async (): Promise<IteratorResult<T>> => {
      if (!ready) {
        await opened;
        ready = true;
      }
      for (;;) {
        const got = take();
        if (got) return got;
        if (this.failure) throw this.failure;
        if (this.done) return { value: undefined, done: true };
        await new Promise<void>((resolve) => (this.waiter = resolve));
      }
    };
    return {
      // Most calls find a frame already parsed: answer them without an async function's machinery.
      next: (): Promise<IteratorResult<T>> => {
        const got = ready ? take() : null;
        return got ? Promise.resolve(got) : wait();
      },
      return: async (): Promise<IteratorResult<T>> => {
        // The reader stopped early (break): leave; the stream server counts this consumer as left.
        this.finish(null);
        this.socket?.destroy();
        return { value: undefined, done: true };
      },
    };
  }

  private async open(): Promise<void> {
    const { host, port } = this.location;
    const timeoutMs = this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const scanner = new FrameScanner(this.options.maxFrame ?? DEFAULT_STREAM_MAX_FRAME_BYTES);
    // Larger reads than Node's 64 KiB (fewer wakeups): into fresh memory when frames are kept in place (ReadSlab),
    // into the walk's memory, reused, when only payloads are (ReadRing).
    const walk = this.walk;
    const reads: ReadMemory = walk ? new ReadRing(walk.readRegion()) : new ReadSlab();
    const early: Buffer[] = [];
    let onChunk = (chunk: Buffer): void => void early.push(chunk);
    const socket = netConnect({
      host,
      port,
      onread: {
        buffer: () => reads.next(scanner.heldPieces),
        callback: (n: number, region: Uint8Array) => {
          onChunk(reads.taken(region, n));
          return true;
        },
      },
    });
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms (connectTimeoutMs)`)), timeoutMs);
      const fail = (err: NodeJS.ErrnoException): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new EdgeechoError('CONNECTION_CLOSED', `cannot connect to the stream at ${host}:${port}: ${err.code ?? err.message} (is the session still ready? session.get shows its state and location)`, { location: `${host}:${port}`, errno: err.code }, { cause: err }));
      };
      socket.once('error', fail);
      socket.once('connect', () => {
        this.connected = true;
        clearTimeout(timer);
        socket.off('error', fail);
        resolve();
      });
    });
    const signal = this.options.signal;
    if (signal) {
      const onAbort = (): void => {
        this.finish(new EdgeechoError('CANCELLED', `reading the stream at ${host}:${port} was cancelled`, undefined, { cause: signal.reason }));
        socket.destroy();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
    const onRun = (buf: Buffer, start: number, end: number): void => {
      if (this.done) return;
      if (walk?.owns(buf)) this.walkRun(walk, buf, start, end);
      else this.readRun(buf, start, end);
    };
    onChunk = (chunk: Buffer): void => {
      if (this.startedAt === 0) this.startedAt = performance.now();
      if (this.done) return;
      try {
        scanner.pushRuns(chunk, onRun);
      } catch (err) {
        // bytes after the end frame are not read (DATA.md 3); an ack may still be on its way out
        if (this.done) return;
        this.finish(new EdgeechoError('BAD_FRAME', `the stream at ${host}:${port} cannot be framed any more: ${(err as Error).message}`));
        socket.destroy();
        return;
      }
      if (this.queue.length - this.head >= this.queueHigh) socket.pause();
      this.wake();
    };
    for (const chunk of early.splice(0)) onChunk(chunk);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (!this.done) {
        const s = this.summary;
        this.finish(new EdgeechoError('DATA_LOSS', `the stream at ${host}:${port} closed after ${s.frames} data frames without an end frame`, this.lossDetails()));
      }
    });
  }

  /**
   * Checks and queues the whole frames buf[start, end) in one pass: a data frame in the probe's layout with the next
   * seq is read in place with a few word compares (no callback, no object but the StreamFrame) and its payload
   * gathered for the CRC; anything else (the details and end frames, another layout, a gap) goes through readFrame.
   * Frames are read where they lie in the chunk: no copy, no view per frame but the payload handed out.
   */
  private readRun(buf: Buffer, start: number, end: number): void {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const s = this.summary;
    const queue = this.queue;
    const checksum = this.checksum;
    const keepFrames = this.keepFrames;
    let expected = this.expected;
    let frames = 0;
    let payloadBytes = 0;
    let pos = start;
    while (pos < end) {
      const length = view.getUint32(pos);
      const body = pos + FRAME_HEADER_BYTES;
      pos = body + length;
      const payload = s.first_seq === null ? -1 : probePayloadStart(view, body, length);
      if (payload >= 0 && probeSeq(view, body) === expected) {
        checksum.add(view, payload, pos);
        if (keepFrames) queue.push(new StreamFrame(expected, probeTs(view, body), buf, payload, pos));
        expected++;
        frames++;
        payloadBytes += pos - payload;
        continue;
      }
      this.expected = expected;
      s.frames += frames;
      s.payload_bytes += payloadBytes;
      s.checksum = checksum.value;
      frames = payloadBytes = 0;
      this.readFrame(buf, body, length);
      expected = this.expected;
      if (this.done) break;
    }
    this.expected = expected;
    s.bytes += pos - start;
    s.frames += frames;
    s.payload_bytes += payloadBytes;
    s.checksum = checksum.value;
    if (!keepFrames) for (const bytes of checksum.take()) queue.push(bytes);
  }

  /**
   * payloads(): the whole frames buf[start, end) in the walk's memory. The walk takes the data frames in the probe's
   * layout with the next seq and gathers their payloads; each frame it leaves (the details and end frames, another
   * layout, a gap) is read here, in order, so the CRC-32 and the bytes handed out stay in stream order.
   */
  private walkRun(walk: FrameWalk, buf: Buffer, start: number, end: number): void {
    const s = this.summary;
    let pos = start;
    while (pos < end) {
      const from = pos;
      // the walk counts seqs in 32 bits: from 0xffffffff on (a seq the probe layout cannot carry next) JS reads
      if (s.first_seq !== null && this.expected < 0xffff_ffff) pos = walk.walk(buf, from, end, this.expected);
      if (pos > from) {
        s.frames += walk.expected - this.expected;
        s.payload_bytes += walk.gathered.length;
        this.expected = walk.expected;
        this.checksum.addGathered(walk.gathered);
        continue;
      }
      s.checksum = this.checksum.value;
      const length = buf.readUInt32BE(pos);
      this.readFrame(buf, pos + FRAME_HEADER_BYTES, length);
      pos += FRAME_HEADER_BYTES + length;
      if (this.done) break;
    }
    s.bytes += pos - start;
    s.checksum = this.checksum.value;
    for (const bytes of this.checksum.take()) this.queue.push(bytes);
  }

  /** One frame of any kind, decoded in full. */
  private readFrame(buf: Buffer, start: number, length: number): void {
    if (readDataFrame(buf, start, length, this.parsed)) return this.onData(this.parsed);
    let value: unknown;
    try {
      // a copy: a bin value in the details would otherwise be a view of memory a read ring reuses
      value = unpackValue(Buffer.from(buf.subarray(start, start + length)));
    } catch (err) {
      const { host, port } = this.location;
      return this.finish(new EdgeechoError('BAD_FRAME', `the stream at ${host}:${port} sent a frame that is not msgpack: ${(err as Error).message}`));
    }
    const v = value as Record<string, unknown> | null;
    if (v?.type === 'details' && this.summary.details === null) {
      const { type: _type, ...details } = v;
      this.summary.details = details;
    } else if (v?.type === 'end') this.onEnd(v);
    // other frame types are ignored (DATA.md: receivers ignore what they do not know)
  }

  private onData(f: DataFrame): void {
    const s = this.summary;
    if (s.first_seq === null) {
      s.first_seq = f.seq;
      this.expected = f.seq;
      if (f.seq > 0 && !this.options.allowLateJoin) {
        s.lost += f.seq;
        return this.finish(new EdgeechoError('DATA_LOSS', `the first data frame has seq ${f.seq}, expected 0: frames 0..${f.seq - 1} were sent before this consumer connected (allowLateJoin accepts that)`, this.lossDetails()));
      }
    }
    if (f.seq !== this.expected) {
      if (f.seq > this.expected) s.lost += f.seq - this.expected;
      else s.out_of_order++;
      const what = f.seq > this.expected ? `${f.seq - this.expected} frames missing` : 'out of order';
      return this.finish(new EdgeechoError('DATA_LOSS', `data frame seq ${f.seq} after ${this.expected - 1}, expected ${this.expected}: ${what}`, this.lossDetails()));
    }
    this.expected++;
    s.frames++;
    s.payload_bytes += f.payloadEnd - f.payloadStart;
    this.checksum.add(new DataView(f.body.buffer, f.body.byteOffset, f.body.byteLength), f.payloadStart, f.payloadEnd);
    s.checksum = this.checksum.value;
    if (this.keepFrames) this.queue.push(new StreamFrame(f.seq, f.ts, f.body, f.payloadStart, f.payloadEnd));
  }

  private onEnd(v: Record<string, unknown>): void {
    const s = this.summary;
    const count = typeof v.count === 'number' ? v.count : -1;
    const checksum = typeof v.checksum === 'number' ? v.checksum : -1;
    s.end = { count, checksum };
    const late = (s.first_seq ?? 0) > 0;
    if (count > this.expected) s.lost += count - this.expected;
    if (!late) s.checksum_ok = checksum === s.checksum;
    // An explicit ack, then our FIN: the server counts this consumer done either way (DATA.md 5).
    this.socket?.end(encodeFrame({ type: 'ack', count: s.frames }));
    if (count !== this.expected) {
      return this.finish(new EdgeechoError('DATA_LOSS', `the end frame announces ${count} frames, the stream delivered up to seq ${this.expected - 1} (${s.frames} frames)`, this.lossDetails()));
    }
    if (s.checksum_ok === false) {
      return this.finish(new EdgeechoError('DATA_LOSS', `checksum mismatch: CRC-32 of the payloads received is ${s.checksum}, the end frame says ${checksum}`, this.lossDetails()));
    }
    s.complete = !late;
    this.finish(null);
  }

  private lossDetails(): Record<string, unknown> {
    const s = this.summary;
    return { location: `${this.location.host}:${this.location.port}`, frames: s.frames, first_seq: s.first_seq, lost: s.lost, out_of_order: s.out_of_order, end: s.end, checksum: s.checksum };
  }

  private finish(error: EdgeechoError | null): void {
    if (this.done) return;
    this.done = true;
    this.failure = error;
    this.summary.duration_ms = this.startedAt ? performance.now() - this.startedAt : 0;
    if (error) this.socket?.destroy();
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}

/** Connects to a session's location and iterates its data frames; see StreamConsumer. */
export function consume(location: StreamLocation | string, options: ConsumeOptions = {}): StreamConsumer {
  return new StreamConsumer(location, options);
}

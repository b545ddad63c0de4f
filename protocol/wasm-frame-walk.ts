/**
 * A reader's walk over a run of whole frames that only wants the payloads (DATA.md: a capture, `consume --raw`):
 * in WebAssembly, each data frame in the probe's layout with the next seq has its payload copied to a gather area,
 * which the caller then sums (zlib crc32) and hands on. The same checks as probePayloadStart + probeSeq in JS cost
 * about 45 ns per 64-byte frame there (DataView compares, a 16-word copy, JIT warm-up on every new process); here
 * about 5. The frames must be in the walk's own memory: a socket reads into `readRegion()` (Node's onread).
 * Anything the walk does not take (another layout, a gap, details or end frame, a 32-bit bin) stays for the JS reader.
 *
 * The function, as text (locals: len body next p n t):
 *   (func $walk (param $pos $end $expected $out $outEnd i32) (result i32)
 *     block $exit loop $frame
 *       pos+4 > end or expected = 0xffffffff: exit;  len = bswap(load pos);  body = pos+4;  next = body+len
 *       next > end or next < body or len < 42: exit;  each fixed layout word at body+k differs: exit
 *       marker = load8 body+40:  0xc4: n = load8 body+41, p = body+42;  0xc5 (len >= 43): n = be16 body+41, p = body+43;  else exit
 *       next-p != n or bswap(load body+16) != expected or out+n > outEnd: exit
 *       memory.copy out p n;  out += n;  expected += 1;  pos = next;  br $frame
 *     end end
 *     store 0 expected;  store 4 out;  return pos)
 */
import { PROBE_LAYOUT } from './data-frame.js';

/** Where the walk leaves expected (i32 at 0) and the end of what it gathered (i32 at 4). */
const STATUS_AT = 0;
const GATHER_AT = 64;
/** Payload bytes per walk at most: one step of payloads() (256 KiB). */
export const WALK_GATHER_BYTES = 256 * 1024;
const READS_AT = 512 * 1024;
/** Room for socket reads: a ring of four 1 MiB reads (protocol/read-slab.ts ReadRing). */
export const WALK_READ_BYTES = 4 * 1024 * 1024;
const PAGE_BYTES = 64 * 1024;

const byteSwapped = (x: number): number => ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);

function sleb(n: number): number[] {
  const out: number[] = [];
  for (let v = n | 0; ; ) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    const b = n & 0x7f;
    n >>>= 7;
    out.push(n ? b | 0x80 : b);
  } while (n);
  return out;
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s)];

// The opcodes the walk uses (WebAssembly core spec, binary format).
const I32 = 0x7f;
const get = (i: number): number[] => [0x20, i];
const set = (i: number): number[] => [0x21, i];
const tee = (i: number): number[] => [0x22, i];
const k = (n: number): number[] => [0x41, ...sleb(n)];
const load = (offset: number): number[] => [0x28, 0x00, ...uleb(offset)];
const load8 = (offset: number): number[] => [0x2d, 0x00, ...uleb(offset)];
const store = (offset: number): number[] => [0x36, 0x02, ...uleb(offset)];
const [ADD, SUB, AND, OR, SHL, ROTL, ROTR, EQ, NE, LT_U, GT_U] = [0x6a, 0x6b, 0x71, 0x72, 0x74, 0x77, 0x78, 0x46, 0x47, 0x49, 0x4b];
const brIf = (depth: number): number[] => [0x0d, depth];
const br = (depth: number): number[] => [0x0c, depth];
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const END = 0x0b;
const MEMORY_COPY = [0xfc, 0x0a, 0x00, 0x00];

// params then locals
const [POS, STOP, EXPECTED, OUT, OUT_END, LEN, BODY, NEXT, P, N, T] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
/** The big-endian word on the stack, read little-endian, in host order (t is scratch). */
const bswap = [...tee(T), ...k(8), ROTL, ...k(0x00ff00ff), AND, ...get(T), ...k(8), ROTR, ...k(0xff00ff00 | 0), AND, OR];
const H = PROBE_LAYOUT.payloadHeaderAt;

/** The walk's body; `exit` is the branch depth of the outer block from the loop's level. */
function walkBody(): number[] {
  const exitUnless = (...cond: number[]): number[] => [...cond, ...brIf(1)];
  return [
    ...BLOCK,
    ...LOOP,
    ...exitUnless(...get(POS), ...k(4), ADD, ...get(STOP), GT_U),
    // seq 0xffffffff is the last a u32 carries: the JS reader takes it and whatever follows
    ...exitUnless(...get(EXPECTED), ...k(-1), EQ),
    ...get(POS), ...load(0), ...bswap, ...set(LEN),
    ...get(POS), ...k(4), ADD, ...tee(BODY), ...get(LEN), ADD, ...tee(NEXT),
    ...exitUnless(...get(STOP), GT_U),
    ...exitUnless(...get(NEXT), ...get(BODY), LT_U),
    ...exitUnless(...get(LEN), ...k(H + 2), LT_U),
    ...PROBE_LAYOUT.words.flatMap(([at, word]) => exitUnless(...get(BODY), ...load(at), ...k(byteSwapped(word)), NE)),
    // block $bin { block $c5 { c4? n, p; br $bin } c5? n, p }: inside, exit is 2 (from $c5's end: 2, from $c5: 3)
    ...BLOCK,
    ...BLOCK,
    ...get(BODY), ...load8(H), ...k(0xc4), NE, ...brIf(0),
    ...get(BODY), ...load8(H + 1), ...set(N), ...get(BODY), ...k(H + 2), ADD, ...set(P), ...br(1),
    END,
    ...get(BODY), ...load8(H), ...k(0xc5), NE, ...brIf(2),
    ...get(LEN), ...k(H + 3), LT_U, ...brIf(2),
    ...get(BODY), ...load8(H + 1), ...k(8), SHL, ...get(BODY), ...load8(H + 2), OR, ...set(N), ...get(BODY), ...k(H + 3), ADD, ...set(P),
    END,
    ...exitUnless(...get(NEXT), ...get(P), SUB, ...get(N), NE),
    ...exitUnless(...get(BODY), ...load(PROBE_LAYOUT.seqAt), ...bswap, ...get(EXPECTED), NE),
    ...exitUnless(...get(OUT), ...get(N), ADD, ...get(OUT_END), GT_U),
    ...get(OUT), ...get(P), ...get(N), ...MEMORY_COPY,
    ...get(OUT), ...get(N), ADD, ...set(OUT),
    ...get(EXPECTED), ...k(1), ADD, ...set(EXPECTED),
    ...get(NEXT), ...set(POS),
    ...br(0),
    END,
    END,
    ...k(STATUS_AT), ...get(EXPECTED), ...store(0),
    ...k(STATUS_AT), ...get(OUT), ...store(4),
    ...get(POS),
  ];
}

function walkModule(): Uint8Array<ArrayBuffer> {
  const code = [...vec([[6, I32]]), ...walkBody(), END];
  const pages = (READS_AT + WALK_READ_BYTES) / PAGE_BYTES;
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32]]), ...vec([[I32]])]])),
    ...section(3, vec([[0]])),
    ...section(5, vec([[0x00, ...uleb(pages)]])),
    ...section(7, vec([[...name('walk'), 0x00, 0], [...name('memory'), 0x02, 0]])),
    ...section(10, vec([[...uleb(code.length), ...code]])),
  ]);
}

let compiled: WebAssembly.Module | null = null;

type WalkFn = (pos: number, stop: number, expected: number, out: number, outEnd: number) => number;

/** One reader's walk and its memory (4.5 MiB, fixed: never grown, so views of it stay valid). */
export class FrameWalk {
  /** The whole memory; reads go to `readRegion`, gathered payloads come back as `gathered`. */
  private readonly memory: Buffer;
  private readonly status: Uint32Array;
  private readonly run: WalkFn;
  /** The next seq expected after the last walk. */
  expected = 0;
  /** Payloads the last walk gathered: a view, valid until the next walk. */
  gathered: Buffer;

  constructor() {
    compiled ??= new WebAssembly.Module(walkModule());
    const instance = new WebAssembly.Instance(compiled);
    const buffer = (instance.exports.memory as WebAssembly.Memory).buffer;
    this.memory = Buffer.from(buffer);
    this.status = new Uint32Array(buffer, STATUS_AT, 2);
    this.run = instance.exports.walk as WalkFn;
    this.gathered = this.memory.subarray(GATHER_AT, GATHER_AT);
  }

  /** Where socket reads go (a ReadRing over it). */
  readRegion(): Buffer {
    return this.memory.subarray(READS_AT, READS_AT + WALK_READ_BYTES);
  }

  /** True when buf lies in this walk's memory (frames joined from several reads do not: the JS reader takes them). */
  owns(buf: Buffer): boolean {
    return buf.buffer === this.memory.buffer;
  }

  /**
   * Walks the whole frames buf[start, end) (buf: a view of this memory) from seq `expected` and returns where it
   * stopped: `end`, a frame it does not take, or the gather area full. Sets expected and gathered.
   */
  walk(buf: Buffer, start: number, end: number, expected: number): number {
    const base = buf.byteOffset;
    const stop = this.run(base + start, base + end, expected, GATHER_AT, GATHER_AT + WALK_GATHER_BYTES);
    this.expected = this.status[0]!;
    this.gathered = this.memory.subarray(GATHER_AT, this.status[1]!);
    return stop - base;
  }
}

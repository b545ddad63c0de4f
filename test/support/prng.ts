/** Deterministic PRNG (mulberry32) so a failing fuzz run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** bytes cut at random points into chunks of 1..maxChunk bytes (views, in order): reads as a socket may deliver them. */
export function chunked(bytes: Buffer, rnd: () => number, maxChunk: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = Math.min(bytes.length - at, 1 + Math.floor(rnd() * maxChunk));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

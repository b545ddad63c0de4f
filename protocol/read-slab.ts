/**
 * Fresh memory for every socket read (Node's `onread: {buffer: () => slab.next(), callback}`), so what was read can
 * be kept or relayed in place while the next read goes elsewhere, and one read may take all the kernel holds (up to
 * 1 MiB) instead of Node's 64 KiB. A data-plane reader on a busy 2-core node then wakes several times less often.
 */
export const DEFAULT_READ_SLAB_BYTES = 4 * 1024 * 1024;
export const DEFAULT_READ_MAX_BYTES = 1024 * 1024;

/** Where a reader's socket reads go (Node's `onread: {buffer: () => reads.next(held), callback}`). */
export interface ReadMemory {
  /** The region the next read fills, given the pieces of earlier reads a frame scanner still holds. */
  next(held: readonly Buffer[]): Buffer;
  /** A read of n bytes into what next() gave. */
  taken(region: Uint8Array, n: number): Buffer;
}

export class ReadSlab implements ReadMemory {
  private slab: Buffer;
  private offset = 0;

  constructor(
    private readonly slabBytes = DEFAULT_READ_SLAB_BYTES,
    private readonly readMaxBytes = DEFAULT_READ_MAX_BYTES,
  ) {
    this.slab = Buffer.allocUnsafe(slabBytes);
  }

  /** The region the next read fills; a new slab once less than a quarter read is left. */
  next(): Buffer {
    if (this.slabBytes - this.offset < this.readMaxBytes / 4) {
      this.slab = Buffer.allocUnsafe(this.slabBytes);
      this.offset = 0;
    }
    return this.slab.subarray(this.offset, Math.min(this.offset + this.readMaxBytes, this.slabBytes));
  }

  /** The region handed out last got n bytes: they are the caller's to keep; later reads go past them. */
  taken(region: Uint8Array, n: number): Buffer {
    this.offset += n;
    return (region as Buffer).subarray(0, n);
  }
}

/**
 * Reads into one fixed region, over and over (a reader that copies out all it keeps, e.g. into a FrameWalk's
 * memory): no allocation per read. Reads go round the region; the bytes a frame scanner still holds (the pieces of a
 * frame the next reads complete, FrameScanner.heldPieces) are never written over: a read only gets the room between
 * the last read and the first held piece in the region, and fresh memory when that room is under a quarter read
 * (a frame nearly as long as the region, or longer, is being gathered).
 */
export class ReadRing implements ReadMemory {
  private offset = 0;

  constructor(
    private readonly region: Buffer,
    private readonly readMaxBytes = DEFAULT_READ_MAX_BYTES,
  ) {
    if (region.length < 4 * readMaxBytes) throw new RangeError(`a read ring needs 4 reads of room: ${region.length} < 4 x ${readMaxBytes}`);
  }

  /** The region the next read fills, given the pieces of earlier reads still held (oldest first). */
  next(held: readonly Buffer[]): Buffer {
    const least = this.readMaxBytes / 4;
    // Held pieces in the region lie, in read order, from the first of them up to where the last read ended.
    const first = held.find((piece) => piece.buffer === this.region.buffer && piece.byteOffset >= this.region.byteOffset && piece.byteOffset < this.region.byteOffset + this.region.length);
    const heldAt = first ? first.byteOffset - this.region.byteOffset : -1;
    // from the last read on: up to the held bytes if they lie ahead (left from the previous round), else to the end
    let limit = heldAt >= this.offset ? heldAt : this.region.length;
    if (limit - this.offset < least && heldAt < this.offset) {
      // round again: up to the held bytes, if any
      this.offset = 0;
      limit = heldAt >= 0 ? heldAt : this.region.length;
    }
    if (limit - this.offset < least) return Buffer.allocUnsafe(this.readMaxBytes);
    return this.region.subarray(this.offset, Math.min(this.offset + this.readMaxBytes, limit));
  }

  /** A read of n bytes into what next() gave. */
  taken(region: Uint8Array, n: number): Buffer {
    if (region.buffer === this.region.buffer) this.offset = region.byteOffset - this.region.byteOffset + n;
    return (region as Buffer).subarray(0, n);
  }
}

/**
 * Fresh memory for every socket read (Node's `onread: {buffer: () => slab.next(), callback}`), so what was read can
 * be kept or relayed in place while the next read goes elsewhere, and one read may take all the kernel holds (up to
 * 1 MiB) instead of Node's 64 KiB. A data-plane reader on a busy 2-core node then wakes several times less often.
 */
export const DEFAULT_READ_SLAB_BYTES = 4 * 1024 * 1024;
export const DEFAULT_READ_MAX_BYTES = 1024 * 1024;

export class ReadSlab {
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

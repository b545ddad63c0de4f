/**
 * Finds frame boundaries in a byte stream without copying or decoding frames: the data plane relays and
 * reads frames in place. Holds only the bytes of one incomplete frame, and joins its chunks once it is whole,
 * so a large frame costs O(size), not O(size x chunks).
 */
import { FRAME_HEADER_BYTES } from '../protocol/codec.js';

export class FrameScanError extends Error {}

export class FrameScanner {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes the first held frame needs in total, once its header is known. */
  private needed = FRAME_HEADER_BYTES;

  constructor(readonly maxFrame: number) {}

  /**
   * Calls onFrame(buf, bodyStart, bodyLength) for every complete frame; returns the buffer and the byte range
   * [0, end) holding those frames (whole frames only, ready to relay), or null when none completed.
   * onFrame returning false stops the scan after that frame (the rest stays held).
   */
  push(chunk: Buffer, onFrame: (buf: Buffer, start: number, length: number) => boolean): { buf: Buffer; end: number } | null {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered < this.needed) return null;
    const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    let pos = 0;
    const len = buf.length;
    while (pos + FRAME_HEADER_BYTES <= len) {
      const length = buf.readUInt32BE(pos);
      if (length === 0 || length > this.maxFrame) {
        throw new FrameScanError(`frame length ${length} at stream offset ${pos}: expected 1..${this.maxFrame} (largest data frame for the payload size)`);
      }
      if (pos + FRAME_HEADER_BYTES + length > len) break;
      const more = onFrame(buf, pos + FRAME_HEADER_BYTES, length);
      pos += FRAME_HEADER_BYTES + length;
      if (!more) break;
    }
    const rest = buf.subarray(pos);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    this.needed = rest.length >= FRAME_HEADER_BYTES ? FRAME_HEADER_BYTES + rest.readUInt32BE(0) : FRAME_HEADER_BYTES;
    return pos > 0 ? { buf, end: pos } : null;
  }

  get pendingBytes(): number {
    return this.buffered;
  }
}

/**
 * Finds frame boundaries in a byte stream without decoding frames: the data plane relays and reads frames in
 * place. Only a frame split across reads is copied (its pieces joined once it is whole); every other frame is
 * handed on as a range of the chunk it arrived in, so a relay copies a few hundred bytes per 64 KiB read instead
 * of the whole read.
 */
import { FRAME_HEADER_BYTES } from './codec.js';

export class FrameScanError extends Error {}

/** Called per whole frame with its body at buf[start, start+length); false stops the scan after this frame. */
export type OnFrame = (buf: Buffer, start: number, length: number) => boolean;
/** Called with each run of whole frames, buf[start, end), in stream order: what a relay forwards. */
export type OnRun = (buf: Buffer, start: number, end: number) => void;

export class FrameScanner {
  /** Pieces of the one incomplete frame, oldest first; held as views, never copied until the frame is whole. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private stopped = false;

  constructor(readonly maxFrame: number) {}

  push(chunk: Buffer, onFrame: OnFrame, onRun: OnRun = () => undefined): void {
    let pos = 0;
    if (this.heldBytes > 0 || this.stopped) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.stopped) return;
      const total = this.heldFrameBytes();
      if (total < 0 || this.heldBytes < total) return;
      // The split frame is whole: join just its bytes; the rest of this chunk is scanned in place below.
      const frame = Buffer.allocUnsafe(total);
      let filled = 0;
      for (const piece of this.held) {
        if (piece === chunk) break;
        piece.copy(frame, filled);
        filled += piece.length;
      }
      pos = total - filled;
      chunk.copy(frame, filled, 0, pos);
      this.held = [];
      this.heldBytes = 0;
      const more = onFrame(frame, FRAME_HEADER_BYTES, total - FRAME_HEADER_BYTES);
      onRun(frame, 0, total);
      if (!more) return this.stop(chunk, pos);
    }
    const start = pos;
    const len = chunk.length;
    let more = true;
    while (pos + FRAME_HEADER_BYTES <= len) {
      const length = this.check(((chunk[pos]! << 24) | (chunk[pos + 1]! << 16) | (chunk[pos + 2]! << 8) | chunk[pos + 3]!) >>> 0, pos);
      if (pos + FRAME_HEADER_BYTES + length > len) break;
      more = onFrame(chunk, pos + FRAME_HEADER_BYTES, length);
      pos += FRAME_HEADER_BYTES + length;
      if (!more) break;
    }
    if (pos > start) onRun(chunk, start, pos);
    if (!more) return this.stop(chunk, pos);
    if (pos < len) {
      this.held = [chunk.subarray(pos)];
      this.heldBytes = len - pos;
    }
  }

  get pendingBytes(): number {
    return this.heldBytes;
  }

  /** After onFrame said stop: keep the rest unscanned (the emulators stop at the end frame and read no further). */
  private stop(chunk: Buffer, pos: number): void {
    this.stopped = true;
    this.held = pos < chunk.length ? [chunk.subarray(pos)] : [];
    this.heldBytes = chunk.length - pos;
  }

  /** Size of the held frame with its header, or -1 while its 4-byte length is not all here. */
  private heldFrameBytes(): number {
    if (this.heldBytes < FRAME_HEADER_BYTES) return -1;
    let length = 0;
    let got = 0;
    for (const piece of this.held) {
      for (let i = 0; i < piece.length && got < FRAME_HEADER_BYTES; i++, got++) length = length * 256 + piece[i]!;
      if (got === FRAME_HEADER_BYTES) break;
    }
    return FRAME_HEADER_BYTES + this.check(length, 0);
  }

  private check(length: number, offset: number): number {
    if (length === 0 || length > this.maxFrame) {
      throw new FrameScanError(`frame length ${length} at chunk offset ${offset}: expected 1..${this.maxFrame} (largest data frame for the payload size)`);
    }
    return length;
  }
}

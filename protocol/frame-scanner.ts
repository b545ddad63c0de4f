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
  /** Where the chunk that completed a held frame continues, after join. */
  private joinedUpTo = 0;

  constructor(readonly maxFrame: number) {}

  push(chunk: Buffer, onFrame: OnFrame, onRun: OnRun = () => undefined): void {
    let pos = 0;
    if (this.heldBytes > 0 || this.stopped) {
      const frame = this.join(chunk);
      if (frame === null) return;
      pos = this.joinedUpTo;
      const more = onFrame(frame, FRAME_HEADER_BYTES, frame.length - FRAME_HEADER_BYTES);
      onRun(frame, 0, frame.length);
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
    this.hold(chunk, pos);
  }

  /**
   * The same boundaries without a call per frame, for a reader that walks the frames of a run itself (a call per
   * 64-byte frame costs it more than the frame's checks): onRun gets the frame joined from earlier reads, then the
   * run of this chunk's whole frames. A bad length throws once the whole frames before it were handed on, as push.
   */
  pushRuns(chunk: Buffer, onRun: OnRun): void {
    let pos = 0;
    if (this.heldBytes > 0) {
      const frame = this.join(chunk);
      if (frame === null) return;
      pos = this.joinedUpTo;
      onRun(frame, 0, frame.length);
    }
    const start = pos;
    const len = chunk.length;
    let bad: FrameScanError | null = null;
    while (pos + FRAME_HEADER_BYTES <= len) {
      const length = ((chunk[pos]! << 24) | (chunk[pos + 1]! << 16) | (chunk[pos + 2]! << 8) | chunk[pos + 3]!) >>> 0;
      if (length === 0 || length > this.maxFrame) {
        bad = this.lengthError(length, pos);
        break;
      }
      if (pos + FRAME_HEADER_BYTES + length > len) break;
      pos += FRAME_HEADER_BYTES + length;
    }
    if (pos > start) onRun(chunk, start, pos);
    if (bad) throw bad;
    this.hold(chunk, pos);
  }

  get pendingBytes(): number {
    return this.heldBytes;
  }

  /** The pieces of the incomplete frame, oldest first: views into the chunks they came in (a read ring must spare them). */
  get heldPieces(): readonly Buffer[] {
    return this.held;
  }

  /**
   * Adds chunk to the held pieces of a split frame; once that frame is whole, returns it joined (just its bytes:
   * the rest of the chunk, from joinedUpTo, is scanned in place) and holds nothing; else null.
   */
  private join(chunk: Buffer): Buffer | null {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.stopped) return null;
    const total = this.heldFrameBytes();
    if (total < 0 || this.heldBytes < total) return null;
    const frame = Buffer.allocUnsafe(total);
    let filled = 0;
    for (const piece of this.held) {
      if (piece === chunk) break;
      piece.copy(frame, filled);
      filled += piece.length;
    }
    this.joinedUpTo = total - filled;
    chunk.copy(frame, filled, 0, this.joinedUpTo);
    this.held = [];
    this.heldBytes = 0;
    return frame;
  }

  /** Keeps chunk[pos..] (the start of a frame the next reads complete). */
  private hold(chunk: Buffer, pos: number): void {
    if (pos < chunk.length) {
      this.held = [chunk.subarray(pos)];
      this.heldBytes = chunk.length - pos;
    }
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
    if (length === 0 || length > this.maxFrame) throw this.lengthError(length, offset);
    return length;
  }

  private lengthError(length: number, offset: number): FrameScanError {
    return new FrameScanError(`frame length ${length} at chunk offset ${offset}: expected 1..${this.maxFrame} (largest data frame for the payload size)`);
  }
}

/**
 * Stream server emulator: connects to the probe (retrying until it answers), listens for consumers on
 * STREAM_PORT and relays every frame to each of them. Data frames are relayed as raw byte ranges of whole
 * frames, never decoded: only each frame's seq is peeked (for loss/order counts) and the rare non-data frame is
 * decoded (details, end). Segmented mode starts the probe once a consumer (the segmentation server) is
 * connected; plain mode once any consumer connects or after STREAM_GRACE_MS, so an unconsumed session completes.
 *
 * Backpressure: the probe is paused while every consumer holds at least PAUSE_BYTES unsent; a consumer that
 * falls more than STREAM_MAX_QUEUE_BYTES behind the fastest one is dropped and counted, so one stalled client
 * neither stalls the others nor grows memory without bound.
 *
 * End of a run (protocol/DATA.md): the end frame is relayed, then each consumer's connection is half-closed
 * (FIN). A consumer is done when it acks the end frame or closes its side after that FIN; the probe is acked
 * only once every consumer is done or gone, so no sender in the chain exits before its receivers have the end.
 */
import { createServer, type Socket } from 'node:net';
import { encodeFrame, FrameDecoder, FRAME_HEADER_BYTES, unpackValue } from '../protocol/codec.js';
import { peekSeq } from '../protocol/data-frame.js';
import { FrameScanner } from '../protocol/frame-scanner.js';
import { ReadSlab } from '../protocol/read-slab.js';
import { connectWithRetry, EmulatorRun, EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_OK, log } from './lifecycle.js';
import { sessionEnv } from './parking.js';
import { listenHost, MAX_PAYLOAD_BYTES, SettingError, streamSettings, type StreamSettings } from './settings.js';

const PAUSE_BYTES = 1024 * 1024;
/** Largest data frame: payload plus the map around it. */
const MAX_DATA_FRAME = MAX_PAYLOAD_BYTES + 1024;

/**
 * How a consumer's connection ended (protocol/DATA.md section 5): completed (acked the end frame, or closed its
 * side after the stream had handed the end frame and its FIN to the kernel), left (closed or reset before),
 * dropped (stopped reading), unconfirmed (had every byte but neither acked nor closed within the idle timeout).
 */
type Outcome = 'completed' | 'left' | 'dropped' | 'unconfirmed';

interface Consumer {
  id: number;
  socket: Socket;
  /** Connected after data frames had been relayed: it starts at a later seq. */
  late: boolean;
  /** The end frame and the stream's FIN are queued on this connection. */
  ended: boolean;
  /** Until the event-loop turn that queued them is over (see the consumer's 'end' handler). */
  endingTurn: boolean;
  /** The consumer sent its FIN before the end frame: it may still read, but can no longer say done by closing. */
  halfClosed: boolean;
  acked: boolean;
  outcome: Outcome | null;
  /** For the stall check: when it last made progress, and what it held and how often it drained then. */
  progressAt: number;
  lastUnsent: number;
  drains: number;
  lastDrains: number;
}

async function main(): Promise<void> {
  let settings: StreamSettings;
  try {
    settings = streamSettings(await sessionEnv('stream'));
  } catch (err) {
    if (!(err instanceof SettingError)) throw err;
    return new EmulatorRun('stream', 1000).finish(EXIT_CONFIG, err.message);
  }
  const run = new EmulatorRun('stream', settings.idleTimeoutMs);
  const pauseBytes = Math.min(PAUSE_BYTES, settings.maxQueueBytes);
  const consumers = new Set<Consumer>();
  let nextConsumerId = 1;
  const tally = { consumers: 0, late: 0, completed: 0, acked: 0, left: 0, dropped: 0, unconfirmed: 0 };
  let details: Record<string, unknown> | null = null;
  let detailsFrame: Buffer | null = null;
  let listening = false;
  let started = false;
  let graceOver = false;
  let end: { count: number; checksum: unknown } | null = null;
  let probeAcked = false;
  let probeClosed = false;
  let paused = false;
  let expected = 0;
  let probe: Socket | null = null;
  let boundPort = settings.port;
  const c = run.counters;
  const updateExtras = (): void => {
    run.extras = {
      mode: settings.mode,
      consumers: tally.consumers,
      late_consumers: tally.late,
      completed_consumers: tally.completed,
      acked_consumers: tally.acked,
      left_consumers: tally.left,
      dropped_consumers: tally.dropped,
      unconfirmed_consumers: tally.unconfirmed,
    };
  };
  updateExtras();

  const fail = (reason: string): void => {
    updateExtras();
    run.finish(EXIT_INCOMPLETE, reason);
  };

  const printReady = (): void => {
    if (listening && details) run.ready({ port: boundPort, mode: settings.mode, probe: details });
  };

  const maybeStart = (): void => {
    if (started || !details || !probe) return;
    if (consumers.size === 0 && !(settings.mode === 'plain' && graceOver)) return;
    started = true;
    run.setPhase(consumers.size ? `relaying to ${consumers.size} consumer(s)` : 'draining the probe with no consumer (grace period over)');
    probe.write(encodeFrame({ type: 'start' }));
  };

  const updatePause = (): void => {
    if (!probe) return;
    let min = Infinity;
    for (const k of consumers) min = Math.min(min, k.socket.writableLength);
    const shouldPause = consumers.size > 0 && min >= pauseBytes;
    if (shouldPause && !paused) probe.pause();
    else if (!shouldPause && paused) probe.resume();
    paused = shouldPause;
  };

  const maybeFinish = (): void => {
    if (probeAcked && probeClosed && consumers.size === 0) {
      updateExtras();
      const failed = c.lost > 0 || c.out_of_order > 0 || (settings.mode === 'segmented' && tally.completed === 0);
      if (!failed) return run.finish(EXIT_OK);
      fail(c.lost || c.out_of_order ? `${c.lost} frames lost, ${c.out_of_order} out of order between probe and stream` : 'no consumer received the end frame in segmented mode');
    }
  };

  /**
   * After the end frame: ack the probe once every consumer has settled, so no sender in the chain exits while a
   * receiver still lacks the end frame.
   */
  const maybeAckProbe = (): void => {
    if (!end || probeAcked || !probe || consumers.size > 0) return;
    probeAcked = true;
    run.complete = c.lost === 0 && c.out_of_order === 0 && (settings.mode === 'plain' || tally.completed > 0);
    run.setPhase('waiting for the probe to close after the ack');
    probe.write(encodeFrame({ type: 'ack', count: c.frames }));
  };

  const settle = (k: Consumer, outcome: Outcome, why: string): void => {
    if (k.outcome) return;
    k.outcome = outcome;
    tally[outcome]++;
    consumers.delete(k);
    log('stream', `consumer ${outcome}`, { consumer: k.id, why, late: k.late, acked: k.acked, unsent_bytes: k.socket.writableLength });
    // A completed consumer has every byte (its ack or its FIN after ours says so); the others get no more.
    k.socket.destroy();
    updateExtras();
    updatePause();
    maybeAckProbe();
    maybeFinish();
  };

  /** The end frame is queued: half-close toward the consumer, so a reader of EOF knows the stream is over. */
  const endConsumer = (k: Consumer): void => {
    k.ended = true;
    k.endingTurn = true;
    setImmediate(() => (k.endingTurn = false));
    k.socket.end();
  };

  /** Bytes at the head of the probe's stream not to relay: the details frame, sent to each consumer on its own. */
  let skipBytes = 0;

  const relay = (buf: Buffer, start: number, end: number): void => {
    if (skipBytes > 0) {
      const n = Math.min(skipBytes, end - start);
      skipBytes -= n;
      start += n;
    }
    if (consumers.size === 0 || start === end) return;
    const bytes = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    let min = Infinity;
    for (const k of consumers) {
      k.socket.write(bytes);
      min = Math.min(min, k.socket.writableLength);
    }
    for (const k of consumers) {
      const lag = k.socket.writableLength - min;
      if (lag > settings.maxQueueBytes) settle(k, 'dropped', `fell ${lag} bytes behind the fastest consumer (STREAM_MAX_QUEUE_BYTES=${settings.maxQueueBytes})`);
    }
    updatePause();
  };

  // Half the idle timeout, so the stream settles a silent consumer before the probe, waiting for its ack,
  // reaches its own idle timeout.
  const stallMs = Math.max(Math.floor(settings.idleTimeoutMs / 2), 1);
  let endAt = 0;
  /**
   * A consumer that stops reading while it holds the run (the probe is paused on it, or the end frame is out) is
   * dropped after stallMs without progress; after the end frame one that has every byte but neither acks nor
   * closes is let go as unconfirmed. So one silent client cannot fail the run.
   */
  const checkConsumers = (): void => {
    const now = Date.now();
    for (const k of [...consumers]) {
      const unsent = k.socket.writableLength;
      if (unsent === 0 || unsent < k.lastUnsent || k.drains !== k.lastDrains) k.progressAt = now;
      k.lastUnsent = unsent;
      k.lastDrains = k.drains;
      if (unsent > 0 && (paused || end) && now - k.progressAt >= stallMs) {
        settle(k, 'dropped', `stopped reading with ${unsent} bytes unsent for ${now - k.progressAt} ms (half of EMULATOR_IDLE_TIMEOUT_MS=${settings.idleTimeoutMs})`);
      } else if (unsent === 0 && end && now - endAt >= stallMs) {
        settle(k, 'unconfirmed', `neither acked nor closed ${now - endAt} ms after the end frame (half of EMULATOR_IDLE_TIMEOUT_MS=${settings.idleTimeoutMs})`);
      }
    }
  };
  setInterval(checkConsumers, Math.max(Math.floor(stallMs / 4), 1)).unref();

  const server = createServer({ allowHalfOpen: true }, (socket) => {
    run.touch();
    socket.setNoDelay(true);
    socket.on('error', (err) => log('stream', 'consumer connection error', { err: err.message }));
    if (end) {
      // The run is over: say what it was, then close; no data frame or end frame follows.
      log('stream', 'consumer connected after the end frame; closing it', { remote: socket.remoteAddress });
      socket.on('end', () => socket.destroy());
      socket.on('data', () => undefined);
      if (detailsFrame) socket.end(detailsFrame);
      else socket.end();
      return;
    }
    const k: Consumer = { id: nextConsumerId++, socket, late: c.frames > 0, ended: false, endingTurn: false, halfClosed: false, acked: false, outcome: null, progressAt: Date.now(), lastUnsent: 0, drains: 0, lastDrains: 0 };
    consumers.add(k);
    tally.consumers++;
    if (k.late) tally.late++;
    updateExtras();
    log('stream', 'consumer connected', { consumer: k.id, remote: socket.remoteAddress, late: k.late, next_seq: expected });
    if (detailsFrame) socket.write(detailsFrame);
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      run.touch();
      let frames;
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        return settle(k, 'left', `sent a bad frame: ${(err as Error).message}`);
      }
      for (const f of frames) {
        const v = f.ok ? (f.value as { type?: unknown }) : null;
        if (v?.type === 'ack' && k.ended) {
          k.acked = true;
          tally.acked++;
          settle(k, 'completed', 'acked the end frame');
        }
      }
    });
    socket.on('drain', () => {
      k.drains++;
      run.touch();
      if (paused) updatePause();
    });
    // The consumer's FIN. After the end frame and our FIN were handed to the kernel it is the consumer's
    // "done" (a reader of EOF closing). Before that it is a half-close (ncat or a BSD nc with stdin at EOF, a
    // client with nothing to say): the consumer may still be reading, so it keeps getting frames; if it has gone,
    // the next writes fail and it is counted left. A FIN seen in the turn that queued the end frame was already
    // waiting when it was written, so it is taken as a half-close too (DATA.md 5.3 names the remaining race).
    socket.on('end', () => {
      run.touch();
      if (k.ended && !k.endingTurn && socket.writableLength === 0) return settle(k, 'completed', 'closed after the end frame');
      k.halfClosed = true;
      log('stream', 'consumer half-closed; still sending to it', { consumer: k.id, ended: k.ended });
    });
    // A half-closed consumer's socket closes cleanly once our FIN is out, which says nothing about delivery: the
    // stall check settles it (acked, or unconfirmed after stallMs). Any other close is a reset or a lost peer.
    socket.on('close', (hadError) => {
      if (!(k.halfClosed && !hadError)) settle(k, 'left', 'connection reset or lost');
    });
    maybeStart();
  });
  server.on('error', (err) => run.finish(EXIT_CONFIG, `cannot listen on port ${settings.port} (STREAM_PORT): ${err.message}`));
  await new Promise<void>((resolve) => server.listen(settings.port, listenHost(process.env), resolve));
  const address = server.address();
  if (typeof address === 'object' && address) boundPort = address.port;
  listening = true;

  run.setPhase(`connecting to the probe at ${settings.probeHost}:${settings.probePort}`);
  const reads = new ReadSlab();
  const early: Buffer[] = [];
  let onProbeData: (chunk: Buffer) => void = (chunk) => early.push(chunk);
  const socket = await connectWithRetry(run, settings.probeHost, settings.probePort, 'the probe', {
    onread: {
      buffer: () => reads.next(),
      callback: (n: number, region: Uint8Array) => {
        onProbeData(reads.taken(region, n));
        return true;
      },
    },
  });
  run.setPhase('waiting for the probe details');
  const scanner = new FrameScanner(MAX_DATA_FRAME);

  const onFrame = (buf: Buffer, start: number, length: number): boolean => {
    const seq = peekSeq(buf, start, length);
    if (seq < 0) return onControl(buf, start, length);
    c.frames++;
    c.bytes += FRAME_HEADER_BYTES + length;
    if (seq === expected) expected++;
    else if (seq > expected) {
      c.lost += seq - expected;
      expected = seq + 1;
    } else c.out_of_order++;
    return true;
  };

  const onControl = (buf: Buffer, start: number, length: number): boolean => {
    let v: Record<string, unknown>;
    try {
      v = unpackValue(buf.subarray(start, start + length)) as Record<string, unknown>;
    } catch (err) {
      fail(`probe sent a frame that is not valid msgpack: ${(err as Error).message}`);
      return false;
    }
    if (v?.type === 'details' && !details) {
      details = { ...v };
      delete details.type;
      detailsFrame = encodeFrame(v);
      skipBytes = FRAME_HEADER_BYTES + length;
      for (const k of consumers) k.socket.write(detailsFrame);
      printReady();
      run.setPhase(settings.mode === 'segmented' ? 'waiting for the segmentation server to connect' : `waiting up to ${settings.graceMs} ms (STREAM_GRACE_MS) for a consumer`);
      if (settings.mode === 'plain') {
        setTimeout(() => {
          graceOver = true;
          maybeStart();
        }, settings.graceMs).unref();
      }
      return true;
    }
    if (v?.type === 'data' && typeof v.seq === 'number') {
      // Another layout of a data frame: count it like the fast path does.
      c.frames++;
      c.bytes += FRAME_HEADER_BYTES + length;
      if (v.seq === expected) expected++;
      else if (v.seq > expected) {
        c.lost += v.seq - expected;
        expected = v.seq + 1;
      } else c.out_of_order++;
      return true;
    }
    if (v?.type === 'end') {
      const count = typeof v.count === 'number' ? v.count : expected;
      end = { count, checksum: v.checksum };
      if (count > expected) c.lost += count - expected;
      run.markData();
      run.setPhase(`waiting for ${consumers.size} consumer(s) to ack or close after the end frame`);
      return false;
    }
    log('stream', 'relaying an unexpected frame from the probe', { type: v?.type });
    return true;
  };

  probe = socket;
  onProbeData = (chunk: Buffer): void => {
    run.touch();
    if (end) return;
    if (started && c.frames === 0) run.markData();
    // One write per read: a frame split across reads is relayed as its own small buffer before the run that
    // follows it, and two writes would be two segments (no Nagle) and two wakeups of every consumer.
    for (const k of consumers) k.socket.cork();
    try {
      scanner.push(chunk, onFrame, relay);
    } catch (err) {
      return fail(`probe stream is corrupt: ${(err as Error).message}`);
    } finally {
      for (const k of consumers) k.socket.uncork();
    }
    if (end) {
      endAt = Date.now();
      for (const k of consumers) endConsumer(k);
    }
    maybeStart();
    if (end) maybeAckProbe();
  };
  for (const chunk of early.splice(0)) onProbeData(chunk);
  socket.on('error', (err) => log('stream', 'probe connection error', { err: err.message }));
  socket.on('close', () => {
    probeClosed = true;
    if (!probeAcked) return fail(`probe closed the connection while ${run.phase}`);
    maybeFinish();
  });
}

void main();

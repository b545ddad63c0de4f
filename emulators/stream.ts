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
 */
import { createServer, type Socket } from 'node:net';
import { encodeFrame, FrameDecoder, FRAME_HEADER_BYTES, unpackValue } from '../protocol/codec.js';
import { peekSeq } from './data-frame.js';
import { FrameScanner } from './frame-scanner.js';
import { connectWithRetry, EmulatorRun, EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_OK, log } from './lifecycle.js';
import { sessionEnv } from './parking.js';
import { MAX_PAYLOAD_BYTES, SettingError, streamSettings, type StreamSettings } from './settings.js';

const PAUSE_BYTES = 1024 * 1024;
/** Largest data frame: payload plus the map around it. */
const MAX_DATA_FRAME = MAX_PAYLOAD_BYTES + 1024;

interface Consumer {
  id: number;
  socket: Socket;
  acked: boolean;
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
  let consumersSeen = 0;
  let dropped = 0;
  let acks = 0;
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
    run.extras = { mode: settings.mode, consumers: consumersSeen, dropped_consumers: dropped, acked_consumers: acks };
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
      const failed = c.lost > 0 || c.out_of_order > 0 || (settings.mode === 'segmented' && acks === 0);
      if (!failed) return run.finish(EXIT_OK);
      fail(c.lost || c.out_of_order ? `${c.lost} frames lost, ${c.out_of_order} out of order between probe and stream` : 'no consumer acknowledged the end frame in segmented mode');
    }
  };

  /** After the end frame: ack the probe once every remaining consumer has acked (or gone). */
  const maybeAckProbe = (): void => {
    if (!end || probeAcked || !probe) return;
    for (const k of consumers) if (!k.acked) return;
    probeAcked = true;
    run.complete = c.lost === 0 && c.out_of_order === 0 && (settings.mode === 'plain' || acks > 0);
    run.setPhase('waiting for the probe to close after the ack');
    probe.write(encodeFrame({ type: 'ack', count: c.frames }));
  };

  const drop = (k: Consumer, lag: number): void => {
    dropped++;
    log('stream', 'dropping a consumer that fell behind', { consumer: k.id, lag_bytes: lag, limit: settings.maxQueueBytes });
    consumers.delete(k);
    k.socket.destroy();
    updateExtras();
  };

  const relay = (bytes: Buffer): void => {
    if (consumers.size === 0) return;
    let min = Infinity;
    for (const k of consumers) {
      k.socket.write(bytes);
      min = Math.min(min, k.socket.writableLength);
    }
    for (const k of consumers) {
      const lag = k.socket.writableLength - min;
      if (lag > settings.maxQueueBytes) drop(k, lag);
    }
    updatePause();
  };

  const server = createServer((socket) => {
    run.touch();
    socket.setNoDelay(true);
    const k: Consumer = { id: nextConsumerId++, socket, acked: false };
    if (end) {
      // The run is over: a consumer arriving now would wait for frames that never come.
      socket.destroy();
      return;
    }
    consumers.add(k);
    consumersSeen++;
    updateExtras();
    log('stream', 'consumer connected', { consumer: k.id, remote: socket.remoteAddress });
    if (detailsFrame) socket.write(detailsFrame);
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      run.touch();
      let frames;
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        log('stream', 'consumer sent a bad frame; closing it', { consumer: k.id, err: (err as Error).message });
        socket.destroy();
        return;
      }
      for (const f of frames) {
        const v = f.ok ? (f.value as { type?: unknown }) : null;
        if (v?.type === 'ack' && end && !k.acked) {
          k.acked = true;
          acks++;
          updateExtras();
          maybeAckProbe();
        }
      }
    });
    socket.on('drain', () => {
      run.touch();
      if (paused) updatePause();
    });
    socket.on('error', (err) => log('stream', 'consumer connection error', { consumer: k.id, err: err.message }));
    socket.on('close', () => {
      if (consumers.delete(k)) log('stream', 'consumer disconnected', { consumer: k.id, acked: k.acked });
      updatePause();
      maybeAckProbe();
      maybeFinish();
    });
    maybeStart();
  });
  server.on('error', (err) => run.finish(EXIT_CONFIG, `cannot listen on port ${settings.port} (STREAM_PORT): ${err.message}`));
  await new Promise<void>((resolve) => server.listen(settings.port, resolve));
  const address = server.address();
  if (typeof address === 'object' && address) boundPort = address.port;
  listening = true;

  run.setPhase(`connecting to the probe at ${settings.probeHost}:${settings.probePort}`);
  const socket = await connectWithRetry(run, settings.probeHost, settings.probePort, 'the probe');
  run.setPhase('waiting for the probe details');
  const scanner = new FrameScanner(MAX_DATA_FRAME);
  let skipTo = 0;

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
      skipTo = start + length;
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
      run.setPhase(`waiting for ${consumers.size} consumer(s) to ack the end frame`);
      return false;
    }
    log('stream', 'relaying an unexpected frame from the probe', { type: v?.type });
    return true;
  };

  probe = socket;
  socket.on('data', (chunk: Buffer) => {
    run.touch();
    if (end) return;
    if (started && c.frames === 0) run.markData();
    let scanned;
    try {
      scanned = scanner.push(chunk, onFrame);
    } catch (err) {
      return fail(`probe stream is corrupt: ${(err as Error).message}`);
    }
    if (scanned) {
      const from = skipTo;
      skipTo = 0;
      if (scanned.end > from) relay(scanned.buf.subarray(from, scanned.end));
    }
    maybeStart();
    if (end) maybeAckProbe();
  });
  socket.on('error', (err) => log('stream', 'probe connection error', { err: err.message }));
  socket.on('close', () => {
    probeClosed = true;
    if (!probeAcked) return fail(`probe closed the connection while ${run.phase}`);
    run.setPhase(`closing ${consumers.size} consumer connection(s)`);
    for (const k of consumers) k.socket.end();
    maybeFinish();
  });
}

void main();

/**
 * Probe emulator: listens on PROBE_PORT; to the stream server that connects it sends its details, waits for
 * start, sends PROBE_COUNT data frames (as fast as backpressure allows, or at PROBE_RATE frames/s), then an end
 * frame with the count and checksum. It exits only after the stream acknowledged the end frame and closed the
 * connection: exiting with bytes still in the socket buffer let Docker tear down the namespace under them.
 */
import { createServer, type Socket } from 'node:net';
import { encodeFrame, FrameDecoder } from '../protocol/codec.js';
import { DataFrameEncoder } from '../protocol/data-frame.js';
import { EmulatorRun, EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_OK, log } from './lifecycle.js';
import { sessionEnv } from './parking.js';
import { listenHost, probeSettings, SettingError, type ProbeSettings } from './settings.js';

/** Bytes per write: large enough to amortise syscalls, small enough to keep rate pacing smooth. */
const BATCH_BYTES = 64 * 1024;
const RATE_TICK_MS = 5;

async function main(): Promise<void> {
  let settings: ProbeSettings;
  try {
    settings = probeSettings(await sessionEnv('probe'));
  } catch (err) {
    if (!(err instanceof SettingError)) throw err;
    const run = new EmulatorRun('probe', 1000);
    return run.finish(EXIT_CONFIG, err.message);
  }
  const run = new EmulatorRun('probe', settings.idleTimeoutMs);
  const details = { type: 'details', probe_id: settings.probeId, count: settings.count, payload_bytes: settings.payloadBytes, rate: settings.rate };
  const encoder = new DataFrameEncoder(settings.payloadBytes);
  run.extras = { probe_id: settings.probeId, checksum: 0 };
  let active: Socket | null = null;
  let started = false;

  const server = createServer((socket) => {
    run.touch();
    if (active) {
      log('probe', 'refusing a second stream connection', { remote: socket.remoteAddress });
      socket.destroy();
      return;
    }
    active = socket;
    socket.setNoDelay(true);
    run.setPhase('waiting for the start frame from the stream');
    socket.write(encodeFrame(details));
    const decoder = new FrameDecoder();
    let acked = false;
    socket.on('data', (chunk: Buffer) => {
      run.touch();
      let frames;
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        return run.finish(EXIT_INCOMPLETE, `stream sent a bad frame: ${(err as Error).message}`);
      }
      for (const f of frames) {
        const v = f.ok ? (f.value as { type?: unknown; count?: unknown }) : null;
        if (v?.type === 'start' && !started) {
          started = true;
          server.close();
          void send(socket).catch((err: Error) => run.finish(EXIT_INCOMPLETE, `sending failed: ${err.message}`));
        } else if (v?.type === 'ack' && run.phase.startsWith('waiting for the ack')) {
          acked = true;
          const count = typeof v.count === 'number' ? v.count : settings.count;
          run.counters.lost = Math.max(settings.count - count, 0);
          run.complete = true;
          run.setPhase('closing after the ack');
          socket.end();
        } else {
          log('probe', 'ignoring an unexpected frame', { frame: f.ok ? f.value : f.error.message, phase: run.phase });
        }
      }
    });
    socket.on('error', (err) => log('probe', 'stream connection error', { err: err.message }));
    socket.on('close', () => {
      if (acked) return run.finish(run.counters.lost ? EXIT_INCOMPLETE : EXIT_OK, run.counters.lost ? `stream acknowledged ${settings.count - run.counters.lost} of ${settings.count} frames` : undefined);
      if (started) return run.finish(EXIT_INCOMPLETE, `stream closed the connection while ${run.phase} after ${run.counters.frames} of ${settings.count} frames`);
      // Closed before start: a stream that restarts may connect again.
      active = null;
      run.setPhase('waiting for the stream to connect');
    });
  });

  async function send(socket: Socket): Promise<void> {
    run.setPhase('sending data frames');
    const perBatch = Math.max(1, Math.floor(BATCH_BYTES / encoder.frameBytes));
    const t0 = performance.now();
    let seq = 0;
    run.markData();
    while (seq < settings.count) {
      let n = Math.min(perBatch, settings.count - seq);
      if (settings.rate > 0) {
        const due = Math.floor(((performance.now() - t0) * settings.rate) / 1000) - seq;
        if (due <= 0) {
          await new Promise((r) => setTimeout(r, RATE_TICK_MS));
          continue;
        }
        n = Math.min(n, due);
      }
      const batch = encoder.batch(seq, n, Date.now());
      if (settings.corruptSeq >= seq && settings.corruptSeq < seq + n) {
        // test-only fault (PROBE_FAULT_CORRUPT_SEQ): the last payload byte of that frame, after the checksum saw it
        const at = (settings.corruptSeq - seq + 1) * encoder.frameBytes - 1;
        if (settings.payloadBytes > 0) batch[at] = batch[at]! ^ 0xff;
      }
      seq += n;
      run.counters.frames = seq;
      run.counters.bytes += batch.length;
      const more = socket.write(batch);
      run.touch();
      if (!more) {
        await new Promise<void>((resolve, reject) => {
          const onClose = (): void => reject(new Error('stream connection closed while waiting for drain'));
          socket.once('close', onClose);
          socket.once('drain', () => {
            socket.off('close', onClose);
            run.touch();
            resolve();
          });
        });
      }
    }
    run.markData();
    run.extras.checksum = encoder.checksum;
    socket.write(encodeFrame({ type: 'end', count: settings.count, checksum: encoder.checksum }));
    run.setPhase('waiting for the ack of the end frame');
  }

  server.on('error', (err) => run.finish(EXIT_CONFIG, `cannot listen on port ${settings.port} (PROBE_PORT): ${err.message}`));
  server.listen(settings.port, listenHost(process.env), () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : settings.port;
    run.setPhase('waiting for the stream to connect');
    run.ready({ port, probe_id: settings.probeId, count: settings.count, payload_bytes: settings.payloadBytes, rate: settings.rate });
  });
}

void main();

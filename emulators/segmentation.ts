/**
 * Segmentation server emulator: connects to the stream server (retrying until it answers), cuts the data
 * frames into segments of SEGMENT_FRAMES, checks sequence continuity and the end frame's checksum, acks the end
 * frame and exits once the stream closes the connection. Exit 0 only with nothing lost and the checksum right.
 */
import { encodeFrame, unpackValue } from '../protocol/codec.js';
import { crc32Update, readDataFrame, type DataFrame } from '../protocol/data-frame.js';
import { FrameScanner } from '../protocol/frame-scanner.js';
import { connectWithRetry, EmulatorRun, EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_OK, log } from './lifecycle.js';
import { sessionEnv } from './parking.js';
import { MAX_PAYLOAD_BYTES, segmentationSettings, SettingError, type SegmentationSettings } from './settings.js';

const MAX_DATA_FRAME = MAX_PAYLOAD_BYTES + 1024;

async function main(): Promise<void> {
  let settings: SegmentationSettings;
  try {
    settings = segmentationSettings(await sessionEnv('segmentation'));
  } catch (err) {
    if (!(err instanceof SettingError)) throw err;
    return new EmulatorRun('segmentation', 1000).finish(EXIT_CONFIG, err.message);
  }
  const run = new EmulatorRun('segmentation', settings.idleTimeoutMs);
  const c = run.counters;
  let segments = 0;
  let inSegment = 0;
  let crc = 0;
  let expected = 0;
  let details: Record<string, unknown> | null = null;
  let end: { count: number; checksum: number } | null = null;
  let checksumOk = false;
  const updateExtras = (): void => {
    run.extras = { segments, segment_frames: settings.segmentFrames, checksum: crc, checksum_ok: checksumOk };
    if (details) run.extras.probe_id = details.probe_id;
  };
  updateExtras();

  const where = `${settings.streamHost}:${settings.streamPort}`;
  run.setPhase(`connecting to the stream at ${where}`);
  const socket = await connectWithRetry(run, settings.streamHost, settings.streamPort, 'the stream');
  run.ready({ stream: where, segment_frames: settings.segmentFrames });
  run.setPhase('waiting for the probe details from the stream');

  const frame: DataFrame = { seq: 0, ts: 0, body: Buffer.alloc(0), payloadStart: 0, payloadEnd: 0 };
  const scanner = new FrameScanner(MAX_DATA_FRAME);

  const onFrame = (buf: Buffer, start: number, length: number): boolean => {
    if (readDataFrame(buf, start, length, frame)) {
      if (c.frames === 0) run.markData();
      c.frames++;
      c.bytes += 4 + length;
      const seq = frame.seq;
      if (seq === expected) expected++;
      else if (seq > expected) {
        c.lost += seq - expected;
        expected = seq + 1;
      } else c.out_of_order++;
      crc = crc32Update(crc, frame.body, frame.payloadStart, frame.payloadEnd);
      if (++inSegment === settings.segmentFrames) {
        segments++;
        inSegment = 0;
      }
      return true;
    }
    let v: Record<string, unknown>;
    try {
      v = unpackValue(buf.subarray(start, start + length)) as Record<string, unknown>;
    } catch (err) {
      run.finish(EXIT_INCOMPLETE, `stream sent a frame that is not valid msgpack: ${(err as Error).message}`);
      return false;
    }
    if (v?.type === 'details') {
      details = v;
      run.setPhase('receiving data frames');
    } else if (v?.type === 'end') {
      run.markData();
      if (inSegment > 0) segments++;
      inSegment = 0;
      const count = typeof v.count === 'number' ? v.count : -1;
      const checksum = typeof v.checksum === 'number' ? v.checksum : -1;
      end = { count, checksum };
      if (count > expected) c.lost += count - expected;
      checksumOk = checksum === crc;
      updateExtras();
      run.complete = c.lost === 0 && c.out_of_order === 0 && checksumOk && count === c.frames;
      run.setPhase('waiting for the stream to close after the ack');
      socket.write(encodeFrame({ type: 'ack', count: c.frames }));
      return false;
    } else {
      log('segmentation', 'ignoring an unexpected frame', { type: v?.type });
    }
    return true;
  };

  socket.on('data', (chunk: Buffer) => {
    run.touch();
    if (end) return;
    try {
      scanner.push(chunk, onFrame);
    } catch (err) {
      run.finish(EXIT_INCOMPLETE, `stream data is corrupt: ${(err as Error).message}`);
    }
  });
  socket.on('error', (err) => log('segmentation', 'stream connection error', { err: err.message }));
  socket.on('close', () => {
    updateExtras();
    if (!end) return run.finish(EXIT_INCOMPLETE, `stream closed the connection while ${run.phase} after ${c.frames} frames`);
    if (run.complete) return run.finish(EXIT_OK);
    const problems = [];
    if (c.lost) problems.push(`${c.lost} frames lost`);
    if (c.out_of_order) problems.push(`${c.out_of_order} out of order`);
    if (!checksumOk) problems.push(`checksum ${crc} does not match the end frame's ${end.checksum}`);
    if (end.count !== c.frames && !c.lost) problems.push(`end frame announced ${end.count} frames, received ${c.frames}`);
    run.finish(EXIT_INCOMPLETE, problems.join('; '));
  });
}

void main();

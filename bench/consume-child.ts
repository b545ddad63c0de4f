/**
 * One consumer of a plain stream for bench/consume.ts, in its own process like any client: `raw` reads bytes to
 * EOF and parses nothing (the ceiling), `raw-crc` reads the same way and only walks the frames and sums the
 * payloads' CRC-32 in JS (no seq check, no objects, no iteration), `library`
 * iterates consume() frame by frame, `batches` a read's worth at a time and `payloads` takes the checked payload
 * bytes alone (continuity and CRC-32 checked every way, the frames walked in WebAssembly). Prints one JSON line: bytes, frames, ms from the first byte to the end, cpu_ms (this process, user + system, from
 * before connecting to the end: what other work on the machine barely moves), ok.
 */
import { connect } from 'node:net';
import { FRAME_HEADER_BYTES, unpackValue } from '../protocol/codec.js';
import { PayloadChecksum, probePayloadStart } from '../protocol/data-frame.js';
import { FrameScanner } from '../protocol/frame-scanner.js';
import { consume } from '../src/client/consume.js';

const [role, portText] = process.argv.slice(2);
const port = Number(portText);

async function raw(): Promise<Record<string, unknown>> {
  const socket = connect({ host: '127.0.0.1', port });
  let bytes = 0;
  let t0 = 0;
  socket.on('data', (chunk: Buffer) => {
    if (t0 === 0) t0 = performance.now();
    bytes += chunk.length;
  });
  await new Promise<void>((resolve, reject) => {
    socket.on('end', () => resolve());
    socket.on('error', reject);
  });
  const ms = performance.now() - t0;
  socket.end();
  return { bytes, ms, ok: bytes > 0 };
}

async function rawCrc(): Promise<Record<string, unknown>> {
  const socket = connect({ host: '127.0.0.1', port });
  const scanner = new FrameScanner(16 * 1024 * 1024 + 1024);
  const checksum = new PayloadChecksum();
  let bytes = 0;
  let frames = 0;
  let end: Record<string, unknown> | null = null;
  let t0 = 0;
  const onRun = (buf: Buffer, start: number, stop: number): void => {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let pos = start; pos < stop; ) {
      const length = view.getUint32(pos);
      const body = pos + FRAME_HEADER_BYTES;
      pos = body + length;
      const payload = probePayloadStart(view, body, length);
      if (payload >= 0) {
        checksum.add(view, payload, pos);
        frames++;
      } else {
        const v = unpackValue(buf.subarray(body, pos)) as Record<string, unknown>;
        if (v.type === 'end') end = v;
      }
    }
  };
  socket.on('data', (chunk: Buffer) => {
    if (t0 === 0) t0 = performance.now();
    bytes += chunk.length;
    scanner.pushRuns(chunk, onRun);
  });
  await new Promise<void>((resolve, reject) => {
    socket.on('end', () => resolve());
    socket.on('error', reject);
  });
  const ms = performance.now() - t0;
  socket.end();
  const e = end as Record<string, unknown> | null;
  return { bytes, frames, ms, ok: e !== null && e.count === frames && e.checksum === checksum.value };
}

async function library(batched: boolean): Promise<Record<string, unknown>> {
  const consumer = consume({ host: '127.0.0.1', port });
  let frames = 0;
  let payloadBytes = 0;
  if (batched) {
    for await (const batch of consumer.batches()) {
      for (const f of batch) {
        frames++;
        payloadBytes += f.payload.length;
      }
    }
  } else {
    for await (const f of consumer) {
      frames++;
      payloadBytes += f.payload.length;
    }
  }
  const s = consumer.summary;
  return { bytes: s.bytes, frames, payload_bytes: payloadBytes, ms: s.duration_ms, ok: s.complete && s.checksum_ok === true };
}

/** The library's byte reader: what `edgeecho consume --raw` writes, without the write. */
async function payloads(): Promise<Record<string, unknown>> {
  const consumer = consume({ host: '127.0.0.1', port });
  let payloadBytes = 0;
  for await (const bytes of consumer.payloads()) payloadBytes += bytes.length;
  const s = consumer.summary;
  return { bytes: s.bytes, frames: s.frames, payload_bytes: payloadBytes, ms: s.duration_ms, ok: s.complete && s.checksum_ok === true };
}

const cpu0 = process.cpuUsage();
const result = role === 'raw' ? await raw() : role === 'raw-crc' ? await rawCrc() : role === 'payloads' ? await payloads() : await library(role === 'batches');
const cpu = process.cpuUsage(cpu0);
process.stdout.write(JSON.stringify({ ...result, cpu_ms: (cpu.user + cpu.system) / 1000 }) + '\n');

/**
 * One consumer of a plain stream for bench/consume.ts, in its own process like any client: `raw` reads bytes to
 * EOF and parses nothing (the ceiling), `library` iterates consume() frame by frame and `batches` a read's worth
 * at a time (continuity and CRC-32 checked either way). Prints one
 * JSON line: bytes, frames, ms from the first byte to the end, ok.
 */
import { connect } from 'node:net';
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

const result = role === 'raw' ? await raw() : await library(role === 'batches');
process.stdout.write(JSON.stringify(result) + '\n');

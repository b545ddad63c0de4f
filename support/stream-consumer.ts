/**
 * A client of a plain session's stream, as a consumer at the session's location sees it. Shared by the runtime
 * conformance tests and the swarm cluster tests (a location on another node).
 */
import { connect } from 'node:net';
import { FrameDecoder, encodeFrame } from '../protocol/codec.js';

/** Consumes a plain stream at `location`: details first, then every data frame in order, then acks the end. */
export function consume(location: { host: string; port: number }, expected: number, timeoutMs = 60_000): Promise<{ frames: number; details: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(location.port, location.host);
    const decoder = new FrameDecoder(4 * 1024 * 1024);
    let details: Record<string, unknown> | null = null;
    let next = 0;
    const timer = setTimeout(() => fail(new Error(`consumer got ${next}/${expected} frames within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.on('error', fail);
    socket.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) {
        if (!f.ok) return fail(f.error);
        const v = f.value as Record<string, unknown>;
        if (v.type === 'details') details = v;
        else if (v.type === 'data') {
          if (!details) return fail(new Error('data before details'));
          if (v.seq !== next) return fail(new Error(`expected seq ${next}, got ${String(v.seq)}`));
          next++;
        } else if (v.type === 'end') {
          socket.write(encodeFrame({ type: 'ack', count: next }));
          clearTimeout(timer);
          socket.end();
          resolve({ frames: next, details: details ?? {} });
        }
      }
    });
  });
}

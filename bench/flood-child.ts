/**
 * The flooders of the flood bench, in their own process so their work does not slow the measuring client:
 * CONNECTIONS connections each say hello, then stop reading and write batches of BATCH session.list requests
 * whenever their socket takes more, for DURATION_MS. One cut off by the daemon connects again. Prints one JSON
 * line with what they did. Usage: flood-child.ts <port> <connections> <batch> <duration_ms>
 */
import { connect, type Socket } from 'node:net';
import { encodeFrame, FrameSplitter, unpackValue } from '../protocol/codec.js';

const [port, connections, batchSize, durationMs] = process.argv.slice(2).map(Number) as [number, number, number, number];
const deadline = Date.now() + durationMs;
const batch = Buffer.concat(Array.from({ length: batchSize }, (_, i) => encodeFrame({ id: i + 1, op: 'session.list' })));
const hello = encodeFrame({ id: 0, op: 'hello', args: { client: 'flood', protocol: 1 } });
const totals = { connects: 0, hellos: 0, batches: 0, cut_off: 0, connect_failures: 0 };
const open = new Set<Socket>();

/** One flooder: connects, hellos, floods until the deadline; connects again when the daemon cuts it off. */
function flooder(): Promise<void> {
  return new Promise((done) => {
    if (Date.now() >= deadline) return done();
    totals.connects++;
    const socket = connect({ host: '127.0.0.1', port });
    open.add(socket);
    const splitter = new FrameSplitter(64 * 1024 * 1024);
    let flooding = false;
    const writeMore = (): void => {
      // bounded: one batch per turn while the socket takes them, then wait for drain
      while (Date.now() < deadline && socket.writable) {
        totals.batches++;
        if (!socket.write(batch)) return void socket.once('drain', writeMore);
        return void setImmediate(writeMore);
      }
    };
    socket.on('data', (chunk) => {
      splitter.forEachFrame(chunk, (body) => {
        const frame = unpackValue(body) as { id?: unknown; kind?: string };
        if (frame.kind === 'hello') socket.write(hello);
        else if (frame.id === 0 && frame.kind === 'result' && !flooding) {
          flooding = true;
          totals.hellos++;
          // never read again: answers pile up in the kernel buffers, then in the daemon
          socket.pause();
          writeMore();
        }
      });
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      open.delete(socket);
      if (!flooding) totals.connect_failures++;
      else if (Date.now() < deadline) totals.cut_off++;
      void flooder().then(done);
    });
  });
}

setTimeout(() => {
  for (const s of open) s.destroy();
}, durationMs).unref();
await Promise.all(Array.from({ length: connections }, () => flooder()));
console.log(JSON.stringify({ ...totals, requests_written: totals.batches * batchSize }));

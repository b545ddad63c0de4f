/**
 * The baseline child for bench/ping.ts and bench/idle-connections.ts: a raw-socket server with the daemon's
 * framing (FrameSplitter + FrameWriter) that sends every body back, without any dispatch. Prints {port, pid}
 * as one JSON line and exits when stdin ends. (The daemon side runs the shipped bundle, dist/edgeecho.mjs.)
 */
import { createServer } from 'node:net';
import { FrameSplitter, FrameWriter } from '../protocol/codec.js';

const server = createServer({ noDelay: true }, (socket) => {
  const splitter = new FrameSplitter();
  const writer = new FrameWriter(socket);
  socket.on('data', (chunk) => splitter.forEachFrame(chunk, (body) => writer.sendBody(body)));
  socket.on('error', () => undefined);
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as { port: number }).port;
process.stdout.write(JSON.stringify({ port, pid: process.pid }) + '\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));

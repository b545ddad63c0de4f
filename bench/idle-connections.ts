/**
 * Idle connections: the resident memory of the daemon as shipped (the dist/edgeecho.mjs bundle, every component
 * on) with CONNECTIONS clients connected and past hello, doing nothing. RSS is VmRSS read from /proc by this
 * process once it settles, with no forced GC: what `ps` and systemd show. Baselines: the same daemon with no
 * connections, and the raw echo server (bare node with the framing). Last line: one JSON object.
 */
import { connect, type Socket } from 'node:net';
import { encodeFrame, FrameSplitter } from '../protocol/codec.js';
import { startServerChild } from './ping.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 1000);

/** Connects, waits for the greeting and the hello answer. */
function helloClient(port: number, i: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    const splitter = new FrameSplitter();
    let frames = 0;
    s.on('error', reject);
    s.on('data', (chunk) => {
      frames += splitter.push(chunk).length;
      if (frames === 1) s.write(encodeFrame({ id: 1, op: 'hello', args: { client: `idle-${i}`, protocol: 1 } }));
      if (frames === 2) resolve(s);
    });
  });
}

export default async function main(): Promise<void> {
  const echo = await startServerChild('echo');
  const echoRss = await echo.rss().finally(() => echo.stop());
  const daemon = await startServerChild('daemon');
  const sockets: Socket[] = [];
  try {
    const before = await daemon.rss();
    for (let i = 0; i < CONNECTIONS; i += 100) {
      sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, CONNECTIONS - i) }, (_, k) => helloClient(daemon.port, i + k)))));
    }
    const after = await daemon.rss();
    const perConnKb = (after - before) / CONNECTIONS / 1024;
    const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);
    console.log(`${CONNECTIONS} idle connections past hello; the shipped bundle in a child process, settled VmRSS (no forced GC)`);
    console.log('| measure                 |     value |');
    console.log('|-------------------------|-----------|');
    console.log(`| raw echo server (bare)  | ${mb(echoRss).padStart(6)} MB |`);
    console.log(`| RSS, no connections     | ${mb(before).padStart(6)} MB |`);
    console.log(`| RSS, ${String(CONNECTIONS).padEnd(5)} connections | ${mb(after).padStart(6)} MB |`);
    console.log(`| per connection          | ${perConnKb.toFixed(1).padStart(6)} KB |`);
    console.log('targets: RSS < 80 MB, < 20 KB per connection');
    console.log(JSON.stringify({ bench: 'idle-connections', connections: CONNECTIONS, rss_echo_bytes: echoRss, rss_before_bytes: before, rss_after_bytes: after, rss_over_echo_bytes: before - echoRss, kb_per_connection: Number(perConnKb.toFixed(2)) }));
  } finally {
    for (const s of sockets) s.destroy();
    await daemon.stop();
  }
}

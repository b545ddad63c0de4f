/**
 * Child process for bench/ping.ts and bench/idle-connections.ts: `daemon` runs the real Daemon (silent
 * logger); `echo` runs a raw-socket server with the same framing (FrameSplitter + FrameWriter) that sends
 * every body back, without any dispatch. Prints {port, pid} as one JSON line, then answers "rss" on stdin.
 */
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameSplitter, FrameWriter } from '../protocol/codec.js';
import { loadConfig } from '../src/config.js';
import { Daemon } from '../src/daemon/daemon.js';
import { silentLogger } from '../src/log.js';
import { createOps } from '../src/ops/index.js';

const mode = process.argv[2] ?? 'daemon';

function rssBytes(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}

let port: number;
if (mode === 'echo') {
  const server = createServer({ noDelay: true }, (socket) => {
    const splitter = new FrameSplitter();
    const writer = new FrameWriter(socket);
    socket.on('data', (chunk) => splitter.forEachFrame(chunk, (body) => writer.sendBody(body)));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
} else {
  // The whole daemon (engine check, records, tracker, reaper, sweep), so its RSS is the real one; images are
  // not built here (the bundle cannot find the emulator sources): run `edgeecho images build` once first.
  const dataDir = mkdtempSync(join(tmpdir(), 'edgeecho-bench-'));
  process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  process.on('SIGTERM', () => process.exit(0));
  const { config } = loadConfig({
    env: {},
    argv: ['--host', '127.0.0.1', '--port', '0', '--max-connections', '100000', '--build-images', 'false', '--data-dir', dataDir],
  });
  const ops = await createOps(config, silentLogger);
  const daemon = new Daemon({ config, registry: ops.registry, log: silentLogger });
  port = (await daemon.listen()).tcp!.port;
}
process.stdout.write(JSON.stringify({ port, pid: process.pid }) + '\n');
process.stdin.setEncoding('utf8');
process.stdin.on('data', (line: string) => {
  for (const cmd of line.split('\n').filter(Boolean)) {
    if (cmd === 'rss') {
      (globalThis as { gc?: () => void }).gc?.();
      setTimeout(() => process.stdout.write(JSON.stringify({ rss: rssBytes(), heap: process.memoryUsage().heapUsed }) + '\n'), 50);
    }
  }
});
process.stdin.on('end', () => process.exit(0));

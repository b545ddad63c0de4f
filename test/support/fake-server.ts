/**
 * A scripted stand-in for the daemon, for client tests that need behaviour the real daemon will not show on
 * demand (a foreign protocol version, a refusal before the greeting, a dropped connection mid-request).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { FrameDecoder, FrameWriter } from '../../protocol/codec.js';

export interface FakeServerOptions {
  greeting?: Record<string, unknown> | null;
  /** Sent instead of a greeting. */
  refuse?: Record<string, unknown>;
  /** Answers one request; return undefined to stay silent. */
  handle?: (req: Record<string, unknown>, conn: FakeConnection) => void;
  path?: string;
}

export interface FakeConnection {
  socket: Socket;
  writer: FrameWriter;
  received: Record<string, unknown>[];
}

export interface FakeServer {
  port: number;
  server: Server;
  connections: FakeConnection[];
  close(): Promise<void>;
}

export const FAKE_GREETING = { kind: 'hello', server: 'edgeecho', version: '0.0.0-fake', protocol: 1, protocols: [1], auth: [], max_frame: 1_048_576 };

export async function startFakeServer(options: FakeServerOptions = {}): Promise<FakeServer> {
  const connections: FakeConnection[] = [];
  const server = createServer((socket) => {
    const writer = new FrameWriter(socket);
    const conn: FakeConnection = { socket, writer, received: [] };
    connections.push(conn);
    socket.on('error', () => {});
    if (options.refuse) {
      writer.send(options.refuse);
      writer.flush();
      socket.end();
      return;
    }
    if (options.greeting !== null) writer.send(options.greeting ?? FAKE_GREETING);
    const decoder = new FrameDecoder();
    socket.on('data', (chunk) => {
      for (const frame of decoder.push(chunk)) {
        if (!frame.ok) continue;
        const req = frame.value as Record<string, unknown>;
        conn.received.push(req);
        if (options.handle) options.handle(req, conn);
        else if (req.op === 'hello') writer.send({ id: req.id, kind: 'result', data: { protocol: 1 } });
        else writer.send({ id: req.id, kind: 'result', data: { op: req.op, args: req.args ?? null } });
      }
    });
  });
  await new Promise<void>((resolve) => (options.path ? server.listen(options.path, resolve) : server.listen(0, '127.0.0.1', resolve)));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    server,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.socket.destroy();
        server.close(() => resolve());
      }),
  };
}

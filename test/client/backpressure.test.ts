import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../../src/client/index.js';
import { startFakeServer } from '../support/fake-server.js';

test('a daemon that stops reading holds requests back instead of buffering them all', async () => {
  const server = await startFakeServer();
  try {
    const client = await connect({ port: server.port, keepaliveMs: 0 });
    try {
      const conn = server.connections[0]!;
      conn.socket.pause();
      const text = 'x'.repeat(64 * 1024);
      const count = 200;
      const answers = Array.from({ length: count }, (_, i) => client.request<{ args: { i: number } }>('echo', { i, text }));
      await new Promise((r) => setTimeout(r, 100));
      assert.is(client.writable, false, 'the socket refused writes');
      assert.ok(client.bufferedBytes < 4 * 1024 * 1024, `buffered ${client.bufferedBytes} bytes for ${count * text.length} bytes of requests`);
      conn.socket.resume();
      const results = await Promise.all(answers);
      assert.equal(results.map((r) => r.args.i), Array.from({ length: count }, (_, i) => i));
      assert.is(conn.received.length, count + 1);
    } finally {
      await client.close();
    }
  } finally {
    await server.close();
  }
});

test.run();

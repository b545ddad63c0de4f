import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer } from 'node:net';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeechoError } from '../../protocol/errors.js';
import { runDaemon } from '../../src/cli/daemon.js';
import { createCoreOps } from '../../src/compose.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { OpRegistry } from '../../src/ops/contract.js';
import { silentLogger } from '../../src/log.js';
import { testConfig, WireClient } from './wire-client.js';

const make = (overrides: Parameters<typeof testConfig>[0]) => () => new Daemon({ config: testConfig(overrides), registry: new OpRegistry(), log: silentLogger });

test('bad limits are refused at construction, naming the setting', () => {
  for (const bad of [{ maxInflight: 0 }, { maxFrame: -1 }, { idleTimeoutMs: 1.5 }, { shutdownTimeoutMs: -1 }]) {
    try {
      make(bad)();
      assert.unreachable(`accepted ${JSON.stringify(bad)}`);
    } catch (err) {
      assert.instance(err, EdgeechoError);
      assert.is((err as EdgeechoError).code, 'BAD_REQUEST');
      assert.match((err as EdgeechoError).message, Object.keys(bad)[0]!);
    }
  }
});

test('nothing to listen on is refused', () => {
  assert.throws(make({ tcp: false, socket: '' }), /nothing to listen on/);
});

test('a port in use makes listen reject with the address and the flag to change', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as { port: number }).port;
  try {
    const d = make({ port })();
    await d.listen().then(
      () => assert.unreachable('listened on a port in use'),
      (err: EdgeechoError) => {
        assert.match(err.message, `127.0.0.1:${port}`);
        assert.match(err.message, 'EADDRINUSE');
        assert.match(err.message, 'EDGEECHO_PORT');
      },
    );
  } finally {
    await new Promise((r) => blocker.close(r));
  }
});

test('unix socket: created with the configured mode, stale file replaced, live daemon not stolen, removed on shutdown', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'edgeecho-sock-'));
  const path = join(dir, 'edgeecho.sock');
  try {
    // a stale socket file, as left by a daemon that was killed
    const { spawn } = await import('node:child_process');
    const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => holder.stdout!.once('data', r));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    assert.ok((await stat(path)).isSocket(), 'a stale socket file is in place');

    const d = new Daemon({ config: testConfig({ tcp: false, socket: path, socketMode: 0o600 }), registry: new OpRegistry(), log: silentLogger });
    const where = await d.listen();
    assert.is(where.socket, path);
    assert.is((await stat(path)).mode & 0o777, 0o600);
    const second = new Daemon({ config: testConfig({ tcp: false, socket: path }), registry: new OpRegistry(), log: silentLogger });
    await second.listen().then(
      () => assert.unreachable('took over a live socket'),
      (err: EdgeechoError) => assert.match(err.message, 'another daemon'),
    );
    const greeting = await new Promise<Buffer>((resolve, reject) => {
      const s = connect({ path });
      s.once('data', (b) => {
        s.destroy();
        resolve(b);
      });
      s.once('error', reject);
    });
    assert.ok(greeting.length > 4);
    await d.shutdown();
    await stat(path).then(
      () => assert.unreachable('socket file left behind'),
      () => undefined,
    );
    await writeFile(path, 'not a socket');
    const third = new Daemon({ config: testConfig({ tcp: false, socket: path }), registry: new OpRegistry(), log: silentLogger });
    await third.listen().then(
      () => assert.unreachable('replaced a regular file'),
      (err: EdgeechoError) => assert.match(err.message, 'not a socket'),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('runDaemon: bad config exits 2 before listening; a stop request exits 0 after a graceful shutdown', async () => {
  const stderr = process.stderr.write.bind(process.stderr);
  let captured = '';
  process.stderr.write = ((chunk: string) => {
    captured += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    assert.is(await runDaemon(['--max-inflight', '0'], { env: {} }), 2);
    assert.match(captured, '--max-inflight');
    assert.is(await runDaemon(['--bogus'], { env: {} }), 2);
    assert.match(captured, '--bogus');
  } finally {
    process.stderr.write = stderr;
  }
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  let port = 0;
  const code = runDaemon(['--port', '0', '--host', '127.0.0.1'], {
    env: { EDGEECHO_LOG_LEVEL: 'silent' },
    createOps: async () => createCoreOps(),
    stop: stopped,
    onListening: (a) => {
      port = a.tcp!.port;
    },
  });
  const t0 = Date.now();
  while (port === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
  const c = await WireClient.ready(port);
  assert.is((await c.request({ id: 1, op: 'ping' })).kind, 'result');
  stop();
  assert.is(await code, 0);
  await c.waitClosed();
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import { createServer } from 'node:net';
import type { OpDefinition } from '../../src/ops/contract.js';
import { run } from '../../src/cli/health.js';
import { startDaemon } from '../daemon/wire-client.js';

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const text = { out: '', err: '' };
  stdout.on('data', (c) => (text.out += String(c)));
  stderr.on('data', (c) => (text.err += String(c)));
  return { io: { stdin: new PassThrough(), stdout, stderr, env: {} }, text };
}

const resources = (engine: Record<string, unknown>): OpDefinition<{ fresh?: boolean }> => ({
  name: 'resources',
  summary: 'test: a fixed engine answer; fresh must be asked',
  args: { fresh: { type: 'boolean' } },
  handler: async (args) => {
    if (args.fresh !== true) throw new Error('health must sample the engine now, not read an old sample');
    return { engine };
  },
});

test('0 when the daemon and its engine answer', async () => {
  const d = await startDaemon({}, [resources({ name: 'docker', reachable: true, running: 2 })]);
  try {
    const { io: cli, text } = io();
    assert.is(await run(['--port', String(d.port)], cli), 0, text.err);
    assert.match(text.out, /^healthy: daemon .* at 127\.0\.0\.1:\d+, docker engine reachable, edgeecho containers running: 2$/m);
  } finally {
    await d.stop();
  }
});

test('1 with the engine\'s error when the daemon answers but its engine does not', async () => {
  const d = await startDaemon({}, [resources({ name: 'docker', reachable: false, error: 'connect ENOENT /var/run/docker.sock' })]);
  try {
    const { io: cli, text } = io();
    assert.is(await run(['--port', String(d.port)], cli), 1);
    assert.match(text.err, 'unhealthy: daemon');
    assert.match(text.err, 'docker engine does not: connect ENOENT /var/run/docker.sock');
  } finally {
    await d.stop();
  }
});

test('1 with the reason when nothing answers, and within --timeout-ms when a peer never greets', async () => {
  const dead = io();
  assert.is(await run(['--port', '1'], dead.io), 1);
  assert.match(dead.text.err, /^unhealthy: daemon at 127\.0\.0\.1:1: CONNECTION_CLOSED/);

  const silent = createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const port = (silent.address() as { port: number }).port;
    const mute = io();
    const t0 = Date.now();
    assert.is(await run(['--port', String(port), '--timeout-ms', '300'], mute.io), 1);
    assert.ok(Date.now() - t0 < 3000, `bounded by --timeout-ms (${Date.now() - t0} ms)`);
    assert.match(mute.text.err, 'TIMEOUT');
  } finally {
    silent.close();
    silent.unref();
  }
});

test.run();

/**
 * Which runtime serves: auto takes the local runtime when no engine answers and says so at warn level; an
 * explicit docker without an engine is refused with what to do; a daemon started that way (as `npm start` on a
 * machine without Docker) names the local runtime in hello and resources and serves a session to completion.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { createRuntime } from '../../src/runtime/create-runtime.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { connect } from '../../src/client/index.js';
import { startDaemonProcess, tempDataDir, type DaemonProcess, type SessionView } from '../../support/daemon-process.js';
import { processesUnder } from '../runtime-conformance/runtimes.js';

const NO_ENGINE = { EDGEECHO_DOCKER_SOCKET: '/nonexistent/edgeecho-test-docker.sock' };

function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

test('auto without an engine: the local runtime, said at warn level with the reason', async () => {
  const dataDir = tempDataDir();
  try {
    const { config } = loadConfig({ env: { ...NO_ENGINE, EDGEECHO_DATA_DIR: dataDir } });
    assert.is(config.runtime, 'auto', 'auto is the default');
    const { log, lines } = capture();
    const runtime = await createRuntime(config, log);
    assert.is(runtime.name, 'local');
    assert.is(runtime.driver.name, 'local');
    await runtime.check();
    const warn = lines.find((l) => l.level === 40 && l.runtime === 'local');
    assert.ok(warn, JSON.stringify(lines));
    assert.match(String(warn!.reason), /no Docker engine answers at \/nonexistent/);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('docker asked explicitly without an engine is refused, saying what to do', async () => {
  const { config } = loadConfig({ env: { ...NO_ENGINE, EDGEECHO_RUNTIME: 'docker' } });
  const runtime = await createRuntime(config, capture().log);
  assert.is(runtime.name, 'docker');
  const err = await runtime.check().then(
    () => null,
    (e: EdgeechoError) => e,
  );
  assert.is(err?.code, 'RUNTIME_UNAVAILABLE');
  assert.match(err!.message, /start dockerd or point EDGEECHO_DOCKER_SOCKET/);
  assert.throws(() => loadConfig({ env: { EDGEECHO_RUNTIME: 'podman' } }), /EDGEECHO_RUNTIME.*expected one of auto, docker, local/s);
});

test('a daemon without an engine serves sessions as local processes and names its runtime', async () => {
  const dataDir = tempDataDir();
  let daemon: DaemonProcess | undefined;
  try {
    daemon = await startDaemonProcess({ label: 'create-runtime', dataDir, env: NO_ENGINE });
    const chose = await daemon.waitForLog((l) => l.msg?.startsWith('runtime: ') === true);
    assert.is(chose.level, 40);
    assert.is(chose.runtime, 'local');
    const client = await connect({ port: daemon.port });
    try {
      assert.is(client.helloResult?.runtime, 'local');
      const created = await client.request<{ id: string }>('session.create', { mode: 'segmented', count: 20_000 }, { timeoutMs: 30_000 });
      const final = await client.request<SessionView>('session.watch', { id: created.id }, { timeoutMs: 30_000 });
      assert.is(final.state, 'completed', JSON.stringify(final.error));
      assert.is(final.containers.find((c) => c.role === 'segmentation')?.stats?.frames, 20_000);
      const resources = await client.request<{ engine: { name: string; reachable: boolean } }>('resources', { fresh: true });
      assert.equal([resources.engine.name, resources.engine.reachable], ['local', true]);
    } finally {
      await client.close();
    }
  } finally {
    await daemon?.kill('SIGTERM');
    for (const pid of processesUnder(dataDir)) process.kill(pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test.run();

/**
 * Admission on a real daemon process: past EDGEECHO_MAX_SESSIONS or EDGEECHO_CAPACITY_MEMORY a create is refused
 * with RESOURCE_EXHAUSTED and details {resource, asked, free}, the refused session creates nothing in the runtime,
 * and the slot comes back once the live session ends. Every runtime reserves the same limits (runtimes.ts).
 */
import { test as baseTest } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, EdgeechoError, type Client } from '../../src/client/index.js';
import { runLabel, type DaemonProcess } from '../../support/daemon-process.js';
import { daemonHarness, runtimesUnderTest, type RuntimeUnderTest } from './runtimes.js';

const LABEL = runLabel('daemon-admission');
const runtimes = await runtimesUnderTest('daemon-admission');

async function refusal(promise: Promise<unknown>): Promise<EdgeechoError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof EdgeechoError) return err;
    throw err;
  }
  throw new Error('expected the create to be refused with RESOURCE_EXHAUSTED, it succeeded');
}

for (const rt of runtimes) admission(rt);

function admission(rt: RuntimeUnderTest): void {
  const test = (name: string, fn: () => Promise<void>): void => baseTest(`[${rt.name}] ${name}`, fn);
  const harness = daemonHarness(rt, LABEL);

  test('--max-sessions 1: the second create is refused RESOURCE_EXHAUSTED {resource, asked, free}; the slot returns after stop', async () => {
    let daemon: DaemonProcess | undefined;
    let client: Client | undefined;
    const dataDir = harness.tempDataDir();
    try {
      // A long grace keeps the plain session live (waiting for a consumer) for the whole test.
      daemon = await harness.start(dataDir, ['--max-sessions', '1', '--plain-grace-ms', '60000']);
      client = await connect({ port: daemon.port });
      const first = await client.request<{ id: string }>('session.create', { mode: 'plain', count: 1000 }, { timeoutMs: 60_000 });

      const err = await refusal(client.request('session.create', { mode: 'plain', count: 1000 }, { timeoutMs: 60_000 }));
      assert.is(err.code, 'RESOURCE_EXHAUSTED', err.message);
      const details = err.details as { resource?: unknown; asked?: unknown; free?: unknown };
      assert.is(details.resource, 'sessions');
      assert.is(details.asked, 1);
      assert.is(details.free, 0);
      assert.match(err.message, /EDGEECHO_MAX_SESSIONS/);

      const refused = (await client.request<{ sessions: Array<{ id: string; state: string }> }>('session.list', {})).sessions.filter((s) => s.id !== first.id);
      assert.is(refused.length, 1, 'expected the refused create to be recorded');
      assert.is(refused[0]!.state, 'failed');
      assert.equal(await rt.daemonLeftovers(LABEL, dataDir, [refused[0]!.id]), [], 'a refused session must create nothing in the runtime');

      const stopped = await client.request<{ state: string }>('session.stop', { id: first.id }, { timeoutMs: 60_000 });
      assert.is(stopped.state, 'stopped');
      const again = await client.request<{ id: string }>('session.create', { mode: 'plain', count: 1000 }, { timeoutMs: 60_000 });
      assert.is((await client.request<{ state: string }>('session.stop', { id: again.id }, { timeoutMs: 60_000 })).state, 'stopped');
    } finally {
      await client?.close().catch(() => undefined);
      await harness.cleanup([daemon], dataDir);
    }
  });

  test('--capacity-memory below one session\'s limits: the first create is refused naming memory, asked and free', async () => {
    let daemon: DaemonProcess | undefined;
    let client: Client | undefined;
    const dataDir = harness.tempDataDir();
    try {
      // plain reserves probe 128m + stream 256m by default; 200m cannot hold it.
      daemon = await harness.start(dataDir, ['--capacity-memory', '200m']);
      client = await connect({ port: daemon.port });
      const err = await refusal(client.request('session.create', { mode: 'plain', count: 1000 }, { timeoutMs: 60_000 }));
      assert.is(err.code, 'RESOURCE_EXHAUSTED', err.message);
      const details = err.details as { resource?: unknown; asked?: number; free?: number };
      assert.is(details.resource, 'memory');
      assert.is(details.asked, 384 * 1024 * 1024);
      assert.is(details.free, 200 * 1024 * 1024);
      assert.equal(await rt.daemonLeftovers(LABEL, dataDir), []);
    } finally {
      await client?.close().catch(() => undefined);
      await harness.cleanup([daemon], dataDir);
    }
  });
}

baseTest.run();

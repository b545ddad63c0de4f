/**
 * Churn on a real daemon process: 50 short plain sessions, 5 at a time, each created, left to complete (no
 * consumer, a short EDGEECHO_PLAIN_GRACE_MS) and reaped. All 50 records end completed and the runtime holds
 * nothing of them (no labelled container or network; no local record or process); on every runtime.
 */
import { test as baseTest } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Client } from '../../src/client/index.js';
import { runLabel, waitFor, type DaemonProcess } from '../../support/daemon-process.js';
import { daemonHarness, runtimesUnderTest, type RuntimeUnderTest } from './runtimes.js';
import { listAllSessions } from '../../support/session-pages.js';

const LABEL = runLabel('daemon-fifty-sessions');
const SESSIONS = 50;
const CONCURRENT = 5;
/** Bound on the whole run; about 30 s on a 2-core machine. */
const DEADLINE_MS = 150_000;
const runtimes = await runtimesUnderTest('daemon-fifty-sessions');
for (const rt of runtimes) churn(rt);

function churn(rt: RuntimeUnderTest): void {
  const harness = daemonHarness(rt, LABEL);
  baseTest(`[${rt.name}] ${SESSIONS} plain sessions, ${CONCURRENT} at a time: all completed, nothing labelled left`, async () => {
    let daemon: DaemonProcess | undefined;
    let client: Client | undefined;
    const dataDir = harness.tempDataDir();
    try {
      daemon = await harness.start(dataDir, ['--plain-grace-ms', '100']);
      client = await connect({ port: daemon.port });
      const deadline = Date.now() + DEADLINE_MS;
      const ids: string[] = [];
      const outcomes: Array<{ id: string; state: string; error?: unknown }> = [];
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < SESSIONS && Date.now() < deadline) {
          next++;
          const { id } = await client!.request<{ id: string }>('session.create', { mode: 'plain', count: 1000 }, { timeoutMs: 60_000 });
          ids.push(id);
          const final = await client!.request<{ id: string; state: string; error?: unknown }>('session.watch', { id }, { timeoutMs: 60_000 });
          outcomes.push(final);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENT }, worker));
      assert.is(outcomes.length, SESSIONS, `expected ${SESSIONS} sessions within ${DEADLINE_MS} ms, finished ${outcomes.length}`);
      const notCompleted = outcomes.filter((o) => o.state !== 'completed');
      assert.equal(notCompleted, [], 'every session must complete');

      const records = await listAllSessions<{ id: string; state: string }>(client);
      assert.is(records.length, SESSIONS);
      assert.ok(records.every((r) => r.state === 'completed'));
      // The network goes after the terminal state is recorded, so the last removals may lag the watch by a moment.
      await waitFor('nothing of the sessions left in the runtime', harness.noneLeft(dataDir), 15_000);
      const resources = await client.request<{ sessions?: unknown[]; admission?: { sessions?: number } }>('resources', {});
      assert.ok(resources, 'resources answers after the churn');
    } finally {
      await client?.close().catch(() => undefined);
      await harness.cleanup([daemon], dataDir);
    }
  });
}

baseTest.run();

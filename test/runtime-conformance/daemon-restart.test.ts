/**
 * `kill -9` of a real daemon process, then a new daemon on the same data dir: a session caught mid-create is
 * rolled back (or adopted when every container was already running), and running sessions are adopted and
 * reaped with their final stats. Nothing of these sessions is left: no container or network on the engine, no
 * record or process of the local runtime (which a kill -9 of the daemon must not take down with it).
 */
import { test as baseTest } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Client } from '../../src/client/index.js';
import type { StatusFrame } from '../../protocol/messages.js';
import { RESTARTED_DURING_CREATE } from '../../src/sessions/outcome.js';
import { runLabel, tempDataDir, waitFor, type DaemonProcess, type SessionView } from '../../support/daemon-process.js';
import { SESSION_MARKER_PREFIX } from '../../src/runtime/local/spawn-role.js';
import { daemonHarness, processesUnder, runtimesUnderTest, type RuntimeUnderTest } from './runtimes.js';

const LABEL = runLabel('daemon-restart');
const runtimes = await runtimesUnderTest('daemon-restart');
for (const rt of runtimes) suite(rt);

function suite(rt: RuntimeUnderTest): void {
  const test = (name: string, fn: () => Promise<void>): void => baseTest(`[${rt.name}] ${name}`, fn);
  const { start, noneLeft, cleanup } = daemonHarness(rt, LABEL);

  test('kill -9 during create: the restarted daemon rolls the session back (or adopts it whole) and leaves nothing', async () => {
    const dataDir = tempDataDir();
    let first: DaemonProcess | undefined;
    let second: DaemonProcess | undefined;
    let client: Client | undefined;
    try {
      first = await start(dataDir);
      client = await connect({ port: first.port });
      const call = client.call('session.create', { mode: 'segmented', count: 1000 });
      let session: string | undefined;
      let killedAfter: StatusFrame | undefined;
      for await (const frame of call.status) {
        session ??= frame.session as string | undefined;
        // Mid-create: the network exists and containers are being made, none of the servers is ready yet.
        if (frame.step === 'create probe' && frame.state === 'done') {
          killedAfter = frame;
          await first.kill('SIGKILL');
          break;
        }
      }
      assert.ok(session, 'expected a session id in the first status frame');
      assert.ok(killedAfter, 'expected a "create probe" done frame before the result');
      await call.result.then(
        () => assert.unreachable('the create must not finish: its daemon was killed'),
        (err: { code: string }) => assert.is(err.code, 'CONNECTION_CLOSED'),
      );
      await client.close().catch(() => undefined);
      client = undefined;
      const before = await rt.daemonLeftovers(LABEL, dataDir, [session]);
      assert.ok(before.some((o) => o.endsWith('-net')) && before.some((o) => o.endsWith('-probe')), `expected the killed create to leave its network and probe behind, found ${JSON.stringify(before)}`);

      second = await start(dataDir);
      client = await connect({ port: second.port });
      const record = await client.request<SessionView>('session.get', { id: session });
      if (record.state === 'failed') {
        assert.is(record.transitions.at(-1)?.reason, RESTARTED_DURING_CREATE);
        assert.match(record.error?.message ?? '', RESTARTED_DURING_CREATE);
      } else {
        // Adopted: only when every server was found running; then it must finish like any session.
        assert.ok(['ready', 'completed'].includes(record.state), `expected failed (rolled back) or an adopted session, got ${record.state}`);
        const final = await client.request<SessionView>('session.watch', { id: session }, { timeoutMs: 60_000 });
        assert.is(final.state, 'completed');
      }
      await waitFor(`nothing of ${session} left`, noneLeft(dataDir, [session]), 15_000);
    } finally {
      await client?.close().catch(() => undefined);
      await cleanup([first, second], dataDir);
    }
  });

  test('kill -9 while sessions run: the restarted daemon adopts them, then reaps them with their final stats', async () => {
    const dataDir = tempDataDir();
    let first: DaemonProcess | undefined;
    let second: DaemonProcess | undefined;
    let client: Client | undefined;
    try {
      first = await start(dataDir);
      client = await connect({ port: first.port });
      // 40000 frames at 4000/s: about 10 s, long enough to outlive the restart (tsx start-up is ~3 s).
      const created = await Promise.all([1, 2].map(() => client!.request<{ id: string }>('session.create', { mode: 'segmented', count: 40_000, rate: 4000 }, { timeoutMs: 60_000 })));
      const ids = created.map((c) => c.id);
      await first.kill('SIGKILL');
      if (rt.name === 'local') {
        // Its own process group and files for stdio: a role does not die with its daemon.
        for (const id of ids) assert.is(processesUnder(`${SESSION_MARKER_PREFIX}${id}`).length, 3, `session ${id}: every role outlives the daemon`);
      }
      await client.close().catch(() => undefined);
      client = undefined;

      second = await start(dataDir);
      const reconciled = await second.waitForLog((l) => l.msg === 'reconciled sessions with the runtime');
      client = await connect({ port: second.port });
      for (const id of ids) {
        const record = await client.request<SessionView>('session.get', { id });
        if (record.state === 'ready') continue;
        // A machine slow enough to finish the stream before the restart: reconcile finishes it instead.
        assert.is(record.state, 'completed', `session ${id}: expected ready (adopted) or completed, got ${record.state} (${JSON.stringify(record.error)})`);
      }
      assert.is((reconciled.adopted as number) + (reconciled.finished as number), 2, `expected both sessions adopted or finished, reconcile said ${JSON.stringify(reconciled)}`);

      const finals = await Promise.all(ids.map((id) => client!.request<SessionView>('session.watch', { id }, { timeoutMs: 60_000 })));
      for (const final of finals) {
        assert.is(final.state, 'completed', `session ${final.id}: ${JSON.stringify(final.error)}`);
        const stream = final.containers.find((c) => c.role === 'stream');
        const segmentation = final.containers.find((c) => c.role === 'segmentation');
        assert.is(stream?.exit_code, 0);
        assert.is(stream?.stats?.frames, 40_000);
        assert.is(segmentation?.stats?.frames, 40_000);
        assert.is(segmentation?.stats?.lost, 0);
      }
      await waitFor('nothing of the adopted sessions left', noneLeft(dataDir, ids), 15_000);
    } finally {
      await client?.close().catch(() => undefined);
      await cleanup([first, second], dataDir);
    }
  });
}

baseTest.run();

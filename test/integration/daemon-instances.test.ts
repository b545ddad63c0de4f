/**
 * Two real daemons (their own data dirs, so their own instances) on one engine, both sweeping every second with
 * an orphan grace of 1 s: each one's sessions end exactly as its own client expects, neither touches the other's
 * objects, and an unlabelled object as an edgeecho before instances left it (no record claims it) is left alone
 * by both. Then one is killed with -9 mid-create and restarted: it rolls back only its own leftovers while the
 * other's session runs on to completion.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Client } from '../../src/client/index.js';
import { PACKAGE_VERSION } from '../../src/config.js';
import { LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE, LABEL_SESSION } from '../../src/runtime/driver.js';
import { RESTARTED_DURING_CREATE } from '../../src/sessions/outcome.js';
import { INSTANCE_ID_PATTERN } from '../../src/sessions/session-id.js';
import { dockerOrSkip } from '../support/docker.js';
import { cleanupDaemons, noneLeft, runLabel, startDaemonProcess, tempDataDir, TEST_LABEL, waitFor, type DaemonProcess, type SessionView } from '../../support/daemon-process.js';

const LABEL = runLabel('daemon-instances');
const docker = await dockerOrSkip('integration/daemon-instances');
const AGGRESSIVE = ['--orphan-grace-s', '1', '--sweep-cron', '* * * * * *'];

interface Created {
  id: string;
}

/** Session ids by instance label, of objects carrying this run's test label. */
async function instancesOf(sessions: string[]): Promise<Map<string, Set<string>>> {
  const wanted = new Set(sessions);
  const out = new Map<string, Set<string>>();
  const containers = await docker!.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${LABEL}`] } });
  for (const c of containers) {
    const session = c.Labels[LABEL_SESSION];
    if (!session || !wanted.has(session)) continue;
    const set = out.get(session) ?? new Set<string>();
    set.add(c.Labels[LABEL_INSTANCE] ?? '(none)');
    out.set(session, set);
  }
  return out;
}

if (docker) {
  test('two daemons with aggressive sweeps on one engine: each ends its own sessions as its client expects and never touches the other\'s; kill -9 of one mid-create is cleaned up by its restart alone', async () => {
    const dirs = [tempDataDir(), tempDataDir()];
    let a: DaemonProcess | undefined;
    let b: DaemonProcess | undefined;
    let a2: DaemonProcess | undefined;
    const clients: Client[] = [];
    // An object as the version before instances left it: labelled managed, no instance, no record anywhere.
    const oldSession = `old${LABEL.replace(/\D/g, '').slice(-7).padStart(7, '0')}`;
    const oldLabels = { [LABEL_MANAGED]: 'true', [LABEL_SESSION]: oldSession, [LABEL_ROLE]: 'probe', [TEST_LABEL]: LABEL };
    try {
      [a, b] = await Promise.all(dirs.map((dataDir) => startDaemonProcess({ label: LABEL, dataDir, args: AGGRESSIVE })));
      const old = await docker.createContainer({ name: `edgeecho-${oldSession}-probe`, Image: `edgeecho/probe:${PACKAGE_VERSION}`, Labels: oldLabels });
      const oldNet = await docker.createNetwork({ Name: `edgeecho-${oldSession}-net`, Labels: oldLabels });
      const [ca, cb] = await Promise.all([connect({ port: a.port }), connect({ port: b.port })]);
      clients.push(ca, cb);
      const ia = ca.helloResult?.instance as string;
      const ib = cb.helloResult?.instance as string;
      assert.match(ia, INSTANCE_ID_PATTERN);
      assert.match(ib, INSTANCE_ID_PATTERN);
      assert.is.not(ia, ib, 'two data dirs are two instances');
      assert.is((await a.waitForLog((l) => l.msg === 'instance')).instance, ia);

      // Both create and stop concurrently: per daemon two sessions run to the end, one is stopped while it runs.
      // 20000 frames at 4000/s: about 5 s, many sweeps of the other daemon long.
      const run = async (client: Client): Promise<{ completed: SessionView[]; stopped: SessionView }> => {
        const created = await Promise.all([0, 1, 2].map(() => client.request<Created>('session.create', { mode: 'segmented', count: 20_000, rate: 4000 }, { timeoutMs: 60_000 })));
        const stopped = await client.request<SessionView>('session.stop', { id: created[2]!.id }, { timeoutMs: 30_000 });
        const completed = await Promise.all(created.slice(0, 2).map((c) => client.request<SessionView>('session.watch', { id: c.id }, { timeoutMs: 60_000 })));
        return { completed, stopped };
      };
      // While both run: each sees the other's objects as foreign, none as its own. Settled as a value, so a
      // timeout while the sessions still run is reported below rather than as an unhandled rejection.
      const during = waitFor(
        'each daemon to count the other\'s running containers as foreign',
        async () => {
          const [ra, rb] = await Promise.all([ca.request<any>('resources', { fresh: true }), cb.request<any>('resources', { fresh: true })]);
          return ra.engine.foreign.running > 0 && rb.engine.foreign.running > 0 ? { ra, rb } : undefined;
        },
        20_000,
        100,
      ).then((value) => ({ value, error: null }), (error: Error) => ({ value: null, error }));
      const [ra, rb] = await Promise.all([run(ca), run(cb)]);
      const overlap = await during;
      if (overlap.error) throw overlap.error;
      const seen = overlap.value!;
      assert.is(seen.ra.instance, ia);
      assert.ok(seen.ra.engine.unlabelled.containers >= 1 && seen.ra.engine.unlabelled.networks >= 1, `the old object counts as unlabelled: ${JSON.stringify(seen.ra.engine)}`);
      for (const s of seen.ra.sessions) assert.ok(!rb.completed.some((x) => x.id === s.session), 'a\'s usage lists none of b\'s sessions');

      for (const r of [ra, rb]) {
        for (const final of r.completed) {
          assert.is(final.state, 'completed', `session ${final.id}: ${JSON.stringify(final.error)}`);
          const segmentation = final.containers.find((c) => c.role === 'segmentation');
          assert.is(segmentation?.stats?.frames, 20_000);
          assert.is(segmentation?.stats?.lost, 0);
        }
        assert.is(r.stopped.state, 'stopped', JSON.stringify(r.stopped.error));
        assert.is(r.stopped.transitions.at(-1)?.reason, 'session.stop');
      }
      // The old object outlived many one-second sweeps of both, past its 1 s grace.
      assert.is((await docker.getContainer(old.id).inspect()).Id, old.id);
      assert.is((await docker.getNetwork(oldNet.id).inspect()).Id, oldNet.id);

      // kill -9 of a mid-create while b runs a long session; a's restart removes only what a left.
      const long = await cb.request<Created>('session.create', { mode: 'segmented', count: 40_000, rate: 4000 }, { timeoutMs: 60_000 });
      const call = ca.call('session.create', { mode: 'segmented', count: 1000 });
      let cut: string | undefined;
      for await (const frame of call.status) {
        cut ??= frame.session as string | undefined;
        if (frame.step === 'create probe' && frame.state === 'done') {
          await a.kill('SIGKILL');
          break;
        }
      }
      assert.ok(cut, 'expected the create\'s session id');
      await call.result.then(
        () => assert.unreachable('the killed daemon cannot answer'),
        (err: { code: string }) => assert.is(err.code, 'CONNECTION_CLOSED'),
      );
      const owners = await instancesOf([cut, long.id]);
      assert.equal([...(owners.get(cut) ?? [])], [ia], 'the cut-off create left objects labelled with a\'s instance');
      assert.equal([...(owners.get(long.id) ?? [])], [ib]);

      a2 = await startDaemonProcess({ label: LABEL, dataDir: dirs[0]!, args: AGGRESSIVE });
      const ca2 = await connect({ port: a2.port });
      clients.push(ca2);
      assert.is(ca2.helloResult?.instance, ia, 'the restart keeps the data dir\'s instance');
      const record = await ca2.request<SessionView>('session.get', { id: cut });
      if (record.state === 'failed') assert.is(record.transitions.at(-1)?.reason, RESTARTED_DURING_CREATE);
      else assert.ok(['ready', 'completed'].includes(record.state), `expected the cut-off create rolled back or adopted whole, got ${record.state}`);
      if (record.state === 'failed') {
        await waitFor('the cut-off create\'s objects removed', noneLeft(docker, LABEL, [cut]), 15_000);
      }
      const final = await cb.request<SessionView>('session.watch', { id: long.id }, { timeoutMs: 60_000 });
      assert.is(final.state, 'completed', `b's session must run on through a's kill and restart: ${JSON.stringify(final.error)}`);
      assert.is(final.containers.find((c) => c.role === 'segmentation')?.stats?.frames, 40_000);
      assert.is((await docker.getContainer(old.id).inspect()).Id, old.id, 'the restarted daemon leaves the unclaimed old object alone too');
      const unclaimedLog = await a2.waitForLog((l) => l.msg?.startsWith('objects without an instance label') === true && l.level === 40, 5_000);
      assert.ok((unclaimedLog.containers as string[]).includes(`edgeecho-${oldSession}-probe`), JSON.stringify(unclaimedLog));
    } finally {
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
      await cleanupDaemons(docker, LABEL, [a, b, a2], dirs);
    }
  });
}

test.run();

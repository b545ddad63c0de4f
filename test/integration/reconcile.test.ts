/**
 * Reconcile after a simulated crash on the real engine: one "daemon" creates objects and records and goes away
 * without cleaning up; its restart (new store handle on the same SQLite file, new driver of the same instance)
 * reconciles. Session ids carry a run-unique prefix; everything is removed by session label in finally.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerOrSkip } from '../support/docker.js';
import { silentLogger } from '../../src/log.js';
import { Admission } from '../../src/resources/admission.js';
import { SessionBus } from '../../src/sessions/events.js';
import { RESTARTED_DURING_CREATE } from '../../src/sessions/outcome.js';
import { Reaper } from '../../src/sessions/reaper.js';
import { reconcile } from '../../src/sessions/reconcile.js';
import { testLifecycle } from '../support/lifecycle.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { newInstanceId } from '../../src/sessions/session-id.js';
import { EXIT_AT_ONCE, RUN_UNTIL_TERM, baseImage, launchSession, leftovers, removeSessions, runPrefix, terminate, testDriver, waitFor } from '../../support/reaping-fixtures.js';

const docker = await dockerOrSkip('integration/reconcile');

if (docker) {
  const image = await baseImage(docker);

  test('a fresh instance adopts running sessions, fails vanished ones, rolls back creates and removes orphans', async () => {
    const prefix = runPrefix();
    // Both "daemons" are one instance (one data dir); nothing of another instance is within reach.
    const instance = newInstanceId();
    const ids = { run: `${prefix}run`, done: `${prefix}done`, gone: `${prefix}gone`, half: `${prefix}half`, orphan: `${prefix}orph` };
    const dir = mkdtempSync(join(tmpdir(), 'edgeecho-reconcile-'));
    const path = join(dir, 'sessions.sqlite');
    try {
      // The daemon that "crashed": records and objects, no teardown.
      {
        const store = openSessionStore(path);
        const driver = testDriver(docker, instance);
        await launchSession(driver, store, image, ids.run);
        const done = await launchSession(driver, store, image, ids.done, { scripts: { probe: EXIT_AT_ONCE, stream: EXIT_AT_ONCE } });
        const gone = await launchSession(driver, store, image, ids.gone);
        for (const c of gone.containers) await docker.getContainer(c.id).remove({ force: true });
        await launchSession(driver, store, image, ids.half, { state: 'creating', scripts: { probe: EXIT_AT_ONCE, stream: RUN_UNTIL_TERM } });
        // `half` is segmented in the record but never got its segmentation container.
        store.db.prepare("UPDATE sessions SET mode = 'segmented' WHERE id = ?").run(ids.half);
        await launchSession(driver, null, image, ids.orphan);
        await waitFor(async () => (await Promise.all(done.containers.map((c) => driver.inspectContainer(c.id)))).every((c) => !c.running), 10_000, 'done exited');
        store.close();
      }

      // The next start.
      const store = openSessionStore(path);
      const driver = testDriver(docker, instance);
      const limits = { memoryBytes: 64 * 1024 * 1024, nanoCpus: 0.25e9, pids: 32 };
      const admission = new Admission({ capacityMemory: 1e12, capacityCpus: 64, minFreeMemory: 0, maxSessions: 10, limits: { probe: limits, stream: limits, segmentation: limits }, availableMemory: () => null });
      const finisher = testLifecycle({ driver, store, admission, config: { stopTimeoutS: 1 } });
      const reaper = new Reaper({ driver, store, finisher, log: silentLogger });
      try {
        const report = await reconcile({
          driver,
          store,
          lifecycle: finisher,
          settings: { orphanGraceS: 0, keepFailed: false, sessionTtlS: 3600 },
          log: silentLogger,
        });
        assert.equal(report.adopted, [ids.run]);
        assert.equal(report.finished, [ids.done]);
        assert.equal(report.vanished, [ids.gone]);
        assert.equal(report.rolledBack, [ids.half]);
        assert.is(report.removed.containers.length, 2, 'the orphan session\'s two containers');
        assert.is(report.removed.networks.length, 1);

        assert.is(store.get(ids.run)!.state, 'ready');
        assert.is(await leftovers(docker, ids.run), 3);
        assert.ok(admission.has(ids.run));
        assert.is(store.get(ids.done)!.state, 'completed');
        assert.is(await leftovers(docker, ids.done), 0);
        const gone = store.get(ids.gone)!;
        assert.is(gone.state, 'failed');
        assert.match(gone.error!.message, /vanished/);
        assert.is(await leftovers(docker, ids.gone), 0, 'the vanished session\'s network is removed');
        const half = store.get(ids.half)!;
        assert.is(half.state, 'failed');
        assert.is(half.transitions.at(-1)!.reason, RESTARTED_DURING_CREATE);
        assert.is(await leftovers(docker, ids.half), 0);
        assert.is(await leftovers(docker, ids.orphan), 0);

        // The adopted session is reaped as usual when it ends.
        reaper.start();
        const stream = store.get(ids.run)!.containers.find((c) => c.role === 'stream')!;
        await terminate(docker, stream.id);
        await waitFor(() => store.get(ids.run)!.state !== 'ready', 10_000, 'adopted session reaped');
        await finisher.idle();
        assert.is(store.get(ids.run)!.state, 'completed');
        assert.is(await leftovers(docker, ids.run), 0);
      } finally {
        await reaper.stop();
        await finisher.idle();
        store.close();
      }
    } finally {
      await removeSessions(docker, Object.values(ids));
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.run();

/**
 * Reaping on the real engine with a real SQLite file: completion by event, completion by the sweep when the
 * event stream is cut, the TTL, and orphan removal. Objects carry io.edgeecho.test=sessions and a run-unique
 * session prefix (for cleanup); the driver is an instance of its own, so the sweep under test never judges other
 * tests' or daemons' objects.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerOrSkip } from '../support/docker.js';
import { silentLogger } from '../../src/log.js';
import type { RuntimeDriver, RuntimeEvent } from '../../src/runtime/driver.js';
import { SessionBus } from '../../src/sessions/events.js';
import { Reaper } from '../../src/sessions/reaper.js';
import { testLifecycle } from '../support/lifecycle.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { Sweep } from '../../src/sessions/sweep.js';
import { baseImage, launchSession, leftovers, removeSessions, runPrefix, terminate, testDriver, waitFor } from '../../support/reaping-fixtures.js';

const docker = await dockerOrSkip('integration/reaper');

if (docker) {
  const image = await baseImage(docker);
  const driver = testDriver(docker);
  const prefix = runPrefix();
  let n = 0;
  const nextId = (): string => `${prefix}${(n++).toString(36)}`;

  function harness(overrides: { events?: RuntimeDriver['events'] } = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'edgeecho-reaper-'));
    const store = openSessionStore(join(dir, 'sessions.sqlite'));
    const bus = new SessionBus();
    const finisher = testLifecycle({ driver, store, bus, config: { stopTimeoutS: 1 } });
    const reaperDriver = overrides.events ? { inspectContainer: driver.inspectContainer.bind(driver), events: overrides.events } : driver;
    const reaper = new Reaper({ driver: reaperDriver, store, finisher, log: silentLogger });
    const clock = { now: Date.now() };
    const sweep = new Sweep({
      driver,
      store,
      finisher,
      settings: { sessionTtlS: 60, orphanGraceS: 5, retentionDays: 14, keepFailed: false },
      cron: '* * * * * *',
      log: silentLogger,
      now: () => clock.now,
    });
    const ids: string[] = [];
    return {
      store,
      bus,
      finisher,
      reaper,
      sweep,
      clock,
      ids,
      async close(): Promise<void> {
        await reaper.stop();
        await sweep.stop();
        await finisher.idle();
        store.close();
        await removeSessions(docker!, ids);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  test('a session is recorded complete and its objects removed when its last container exits', async () => {
    const h = harness();
    try {
      const id = nextId();
      h.ids.push(id);
      h.reaper.start();
      const updates: string[] = [];
      h.bus.subscribe(id, (u) => updates.push(u.state));
      const s = await launchSession(driver, h.store, image, id);
      const stream = s.containers.find((c) => c.role === 'stream')!;
      // The probe has exited by now (or soon): the session must stay ready while the stream runs.
      await waitFor(async () => !(await driver.inspectContainer(s.containers[0]!.id)).running, 10_000, 'probe exit');
      await new Promise((r) => setTimeout(r, 300));
      assert.is(h.store.get(id)!.state, 'ready');
      await terminate(docker, stream.id);
      await waitFor(() => h.store.get(id)!.state !== 'ready', 10_000, 'session finished by the reaper');
      await h.finisher.idle();
      const rec = h.store.get(id)!;
      assert.is(rec.state, 'completed', JSON.stringify(rec.transitions));
      assert.equal(rec.containers.map((c) => c.exitCode), [0, 0]);
      assert.ok(rec.containers.every((c) => c.finishedAt !== null));
      assert.is(await leftovers(docker, id), 0);
      assert.equal(updates, ['completed']);
      assert.ok(h.reaper.stats.events > 0);
    } finally {
      await h.close();
    }
  });

  test('with the event stream cut, the sweep finishes the session', async () => {
    // A stream that connects and then says nothing: what a wedged engine connection looks like.
    const silent: RuntimeDriver['events'] = (options) => ({
      [Symbol.asyncIterator]: () => ({
        next: () => new Promise<IteratorResult<RuntimeEvent>>((resolve) => options.signal.addEventListener('abort', () => resolve({ done: true, value: undefined }), { once: true })),
      }),
    });
    const h = harness({ events: silent });
    try {
      const id = nextId();
      h.ids.push(id);
      h.reaper.start();
      const s = await launchSession(driver, h.store, image, id);
      await terminate(docker, s.containers.find((c) => c.role === 'stream')!.id);
      await waitFor(async () => (await Promise.all(s.containers.map((c) => driver.inspectContainer(c.id)))).every((c) => !c.running), 10_000, 'containers exited');
      await new Promise((r) => setTimeout(r, 200));
      assert.is(h.store.get(id)!.state, 'ready', 'no event reached the reaper');
      h.clock.now = Date.now();
      const report = await h.sweep.tick();
      assert.equal(report.finished, [id]);
      assert.is(h.store.get(id)!.state, 'completed');
      assert.is(await leftovers(docker, id), 0);
      assert.is(h.reaper.stats.events, 0);
    } finally {
      await h.close();
    }
  });

  test('a session past its TTL is stopped, failed with the reason, and removed', async () => {
    const h = harness();
    try {
      const id = nextId();
      h.ids.push(id);
      await launchSession(driver, h.store, image, id);
      h.clock.now = h.store.get(id)!.createdAt + 61_000;
      const report = await h.sweep.tick();
      assert.equal(report.expired, [id]);
      const rec = h.store.get(id)!;
      assert.is(rec.state, 'failed');
      assert.is(rec.error!.code, 'TIMEOUT');
      assert.match(rec.transitions.at(-1)!.reason!, /TTL of 60 s/);
      // Stopped with SIGTERM, so the stream exited 0 rather than being killed.
      assert.is(rec.containers.find((c) => c.role === 'stream')!.exitCode, 0);
      assert.is(await leftovers(docker, id), 0);
    } finally {
      await h.close();
    }
  });

  test('labelled objects that no record claims are removed after the grace, and claimed ones kept', async () => {
    const h = harness();
    try {
      const orphan = nextId();
      const live = nextId();
      h.ids.push(orphan, live);
      // The sweep's clock is read from before the launch: on a loaded engine launching may take longer than the grace.
      const launchedFrom = Date.now();
      await launchSession(driver, null, image, orphan);
      await launchSession(driver, h.store, image, live);
      h.clock.now = launchedFrom;
      const first = await h.sweep.tick();
      assert.equal(first.removed, { containers: [], networks: [] }, 'nothing removed inside the grace');
      assert.is(await leftovers(docker, orphan), 3);
      h.clock.now = Date.now() + 5_000;
      const second = await h.sweep.tick();
      assert.is(second.removed.containers.length, 2);
      assert.is(second.removed.networks.length, 1);
      assert.is(await leftovers(docker, orphan), 0);
      assert.is(await leftovers(docker, live), 3);
      assert.is(h.store.get(live)!.state, 'ready');
    } finally {
      await h.close();
    }
  });
}

test.run();

/**
 * Sessions end to end on every runtime (runtimes.ts): session ops over the runtime's driver with the real
 * emulators. Every object created carries io.edgeecho.test=workflow and is removed in finally blocks.
 */
import { test as baseTest } from 'uvu';
import * as assert from 'uvu/assert';
import { callOp, opContext } from '../support/op-context.js';
import { loadConfig, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { SessionBus } from '../../src/sessions/events.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { ADMIT_ALL, testLifecycle } from '../support/lifecycle.js';
import type { SessionStore } from '../../src/sessions/types.js';
import { sessionOps } from '../../src/ops/session-ops.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { OpRegistry } from '../../src/ops/contract.js';
import { connect as connectClient } from '../../src/client/client.js';
import type { StatusFrame } from '../../protocol/messages.js';
import type { RuntimeDriver } from '../../src/runtime/driver.js';
import { removeSessions, waitFor } from '../../support/reaping-fixtures.js';
import { consume } from '../../support/stream-consumer.js';
import { runtimesUnderTest, type RuntimeUnderTest } from './runtimes.js';

const TEST_LABELS = { 'io.edgeecho.test': 'workflow' };
const runtimes = await runtimesUnderTest('sessions');

async function waitExited(driver: RuntimeDriver, ids: string[]): Promise<void> {
  await waitFor(async () => (await Promise.all(ids.map((id) => driver.inspectContainer(id)))).every((c) => !c.running), 60_000, 'every role exited');
}

for (const rt of runtimes) suite(rt);

function suite(rt: RuntimeUnderTest): void {
  const { config } = loadConfig({ env: { EDGEECHO_READY_TIMEOUT_MS: '20000', EDGEECHO_PLAIN_GRACE_MS: '20000', EDGEECHO_STOP_TIMEOUT_S: '2' } });
  const { driver } = rt;
  const created = new Set<string>();
  const test = (name: string, fn: () => Promise<void>): void => baseTest(`[${rt.name}] ${name}`, fn);
  const leftovers = (id: string): Promise<number> => rt.leftovers(id);

  function setup(overrides: Partial<Config> = {}, admit?: (session: string) => Promise<unknown>) {
    const store: SessionStore = openSessionStore(':memory:');
    const bus = new SessionBus();
    const opsConfig = { ...config, ...overrides };
    const lifecycle = testLifecycle({ driver, store, bus, config: opsConfig, labels: TEST_LABELS, ...(admit ? { admission: { ...ADMIT_ALL, admit } } : {}) });
    return { ops: sessionOps({ lifecycle, store, config: opsConfig }), store, bus, lifecycle };
  }

  /** Remembers the session id from the first status frame, so cleanup finds it even when create fails. */
  function tracked() {
    const ctx = opContext();
    const status = ctx.status;
    ctx.status = (fields) => {
      if (typeof fields.session === 'string') created.add(fields.session);
      status(fields);
    };
    return ctx;
  }

  test('plain: 100,000 frames reach a client at the location, in order', async () => {
    const { ops, store, bus, lifecycle } = setup();
    try {
      const ctx = tracked();
      const result = await callOp(ops, 'session.create', { mode: 'plain', count: 100_000, payload_bytes: 64 }, ctx);
      assert.match(result.id, /^[a-z2-7]{10}$/);
      assert.is(result.location.host, await rt.publishedHost());
      assert.ok(result.location.port > 0);
      assert.equal(result.containers.map((c: { role: string }) => c.role), ['probe', 'stream']);
      assert.is(result.probe.count, 100_000);
      const steps = ctx.statuses.filter((s) => s.state === 'done').map((s) => s.step);
      for (const step of ['admit', 'network', 'create probe', 'start probe', 'ready probe', 'create stream', 'start stream', 'ready stream', 'location']) {
        assert.ok(steps.includes(step), `step ${step} done`);
      }
      assert.is(store.get(result.id)?.state, 'ready');
      const got = await consume(result.location, 100_000);
      assert.is(got.frames, 100_000);
      assert.is(got.details.count, 100_000);
      await waitExited(driver, result.containers.map((c: { id: string }) => c.id));
      const final = await lifecycle.finish(result.id, { cause: 'exited' });
      assert.is(final.state, 'completed', JSON.stringify(final.error));
      const probe = final.containers.find((c) => c.role === 'probe');
      assert.is(probe?.exitCode, 0);
      assert.is(probe?.stats?.frames, 100_000);
      assert.is(await leftovers(result.id), 0);
      void bus;
    } finally {
      await removeSessions(driver, created);
    }
  });

  test('segmented: the segmentation server reports 0 lost; watch ends with the final stats', async () => {
    const { ops, lifecycle } = setup();
    try {
      const result = await callOp(ops, 'session.create', { mode: 'segmented', count: 20_000 }, tracked());
      assert.equal(result.containers.map((c: { role: string }) => c.role), ['probe', 'stream', 'segmentation']);
      const watchCtx = opContext(2);
      const watching = callOp(ops, 'session.watch', { id: result.id }, watchCtx);
      await waitExited(driver, result.containers.map((c: { id: string }) => c.id));
      await lifecycle.finish(result.id, { cause: 'exited' });
      const final = await watching;
      assert.is(final.state, 'completed', JSON.stringify(final.error));
      const seg = final.containers.find((c: { role: string }) => c.role === 'segmentation');
      assert.is(seg.exit_code, 0);
      assert.is(seg.stats.lost, 0);
      assert.is(seg.stats.frames, 20_000);
      assert.ok(watchCtx.statuses.some((s) => s.state === 'completed'));
    } finally {
      await removeSessions(driver, created);
    }
  });

  async function expectRollback(ops: ReturnType<typeof setup>['ops'], store: SessionStore, args: Record<string, unknown>, code: string, ctx = tracked()): Promise<string> {
    const before = new Set(created);
    const err = await callOp(ops, 'session.create', args, ctx).then(
      () => null,
      (e: EdgeechoError) => e,
    );
    assert.ok(err, 'create must fail');
    assert.is(err!.code, code, err!.message);
    const id = [...created].find((s) => !before.has(s))!;
    assert.ok(id, 'a session id was reported');
    assert.is(await leftovers(id), 0, 'no labelled container or network is left');
    assert.ok(ctx.statuses.some((s) => String(s.step).startsWith('rollback:')), 'rollback is reported');
    assert.ok(['failed', 'stopped'].includes(store.get(id)!.state));
    return id;
  }

  // Images are Docker's: the local runtime runs the bundled emulators whatever EDGEECHO_IMAGE_* says.
  if (rt.name === 'docker') {
    test('a missing image rolls back', async () => {
      const { ops, store } = setup({ imageStream: 'edgeecho/does-not-exist:0' });
      try {
        await expectRollback(ops, store, { mode: 'plain', count: 10 }, 'NOT_FOUND');
      } finally {
        await removeSessions(driver, created);
      }
    });
  }

  test('a role that exits before ready rolls back, with its stderr in the error', async () => {
    // The workflow sets every env var, so the failure comes from the runtime's side (runtimes.ts): Docker kills a
    // probe whose memory cannot hold node; a local stream cannot listen on an address the host does not have.
    const { overrides, role } = rt.exitBeforeReady;
    const { ops, store } = setup(overrides);
    try {
      const ctx = tracked();
      await expectRollback(ops, store, { mode: 'plain', count: 10 }, 'INTERNAL', ctx);
      const failed = ctx.statuses.find((s) => s.state === 'failed' && s.step === `ready ${role}`);
      assert.ok(failed, JSON.stringify(ctx.statuses.filter((s) => s.state === 'failed')));
      assert.match(String((failed!.error as { message: string }).message), /exited with code|killed/);
    } finally {
      await removeSessions(driver, created);
    }
  });

  test('cancel mid-create rolls back', async () => {
    const { ops, store } = setup();
    try {
      const ctx = tracked();
      const origin = ctx.status;
      ctx.status = (fields) => {
        origin(fields);
        if (fields.step === 'start probe' && fields.state === 'done') ctx.controller.abort();
      };
      await expectRollback(ops, store, { mode: 'plain', count: 10 }, 'CANCELLED', ctx);
    } finally {
      await removeSessions(driver, created);
    }
  });

  test('a name conflict on create rolls back without touching the other container', async () => {
    // Admission runs before any create: a squatter of another session takes the stream's name there.
    let squatter: { session: string; network: string; container: string } | null = null;
    const { ops, store } = setup({}, async (session) => {
      const other = `${session}sq`;
      const network = await driver.createNetwork({ session: other, name: `edgeecho-${other}-net`, labels: TEST_LABELS });
      const container = await driver.createContainer({
        session: other,
        role: 'probe',
        name: `edgeecho-${session}-stream`,
        image: config.imageProbe,
        network,
        aliases: ['probe'],
        env: {},
        labels: TEST_LABELS,
        limits: config.limitsProbe,
      });
      squatter = { session: other, network: network.id, container: container.id };
    });
    try {
      const ctx = tracked();
      await callOp(ops, 'session.create', { mode: 'plain', count: 10 }, ctx).then(
        () => assert.unreachable('create must fail'),
        (e: EdgeechoError) => assert.is(e.code, 'CONFLICT', e.message),
      );
      const id = String(ctx.statuses[0]!.session);
      const squat = squatter as { session: string; network: string; container: string } | null;
      assert.ok(squat, 'the squatter was made');
      assert.ok(await driver.inspectContainer(squat!.container), 'the conflicting container is not ours to remove');
      assert.is(await leftovers(id), 0, 'no labelled container or network is left');
      assert.ok(ctx.statuses.some((s) => s.step === 'rollback:remove probe' && s.state === 'done'));
      assert.is(store.get(id)!.state, 'failed');
    } finally {
      const squat = squatter as { session: string } | null;
      if (squat) await removeSessions(driver, [squat.session]);
      await removeSessions(driver, created);
    }
  });

  test('five sessions created concurrently are all ready on distinct ports (and subnets on Docker)', async () => {
    const { ops } = setup();
    try {
      const results = await Promise.all(Array.from({ length: 5 }, () => callOp(ops, 'session.create', { mode: 'plain', count: 10 }, tracked())));
      assert.is(new Set(results.map((r) => r.location.port)).size, 5);
      // Each Docker session has its own subnet; local sessions share the host's network (subnet "host").
      if (rt.name === 'docker') assert.is(new Set(results.map((r) => r.network.subnet)).size, 5);
      for (const r of results) assert.is((await driver.inspectContainer(r.containers[1].id)).running, true);
      const stopped = await Promise.all(results.map((r) => callOp(ops, 'session.stop', { id: r.id }, opContext())));
      for (const s of stopped) assert.is(s.state, 'stopped');
      for (const r of results) assert.is(await leftovers(r.id), 0);
    } finally {
      await removeSessions(driver, created);
    }
  });

  test('through a real daemon over TCP: status frames, result, and a create that survives its client disconnecting', async () => {
    const { ops, store } = setup();
    const registry = new OpRegistry();
    for (const op of ops) registry.register(op);
    const daemon = new Daemon({ config: { ...config, host: '127.0.0.1', port: 0, tcp: true, socket: '' }, registry, log: silentLogger });
    const ids: string[] = [];
    try {
      const { tcp } = await daemon.listen();
      const client = await connectClient({ host: tcp!.host, port: tcp!.port });
      const frames: StatusFrame[] = [];
      try {
        const result = await client.request<{ id: string; location: { port: number } }>('session.create', { mode: 'plain', count: 10 }, { onStatus: (f) => frames.push(f) });
        ids.push(result.id);
        created.add(result.id);
        assert.ok(result.location.port > 0);
        assert.ok(frames.some((f) => f.step === 'ready stream' && f.state === 'done'));
        const stopped = await client.request<{ state: string }>('session.stop', { id: result.id });
        assert.is(stopped.state, 'stopped');
      } finally {
        await client.close();
      }
      // A second client disconnects as soon as the network exists: the create goes on (detached).
      const leaving = await connectClient({ host: tcp!.host, port: tcp!.port });
      let id = '';
      const gone = leaving
        .request('session.create', { mode: 'plain', count: 10 }, {
          onStatus: (f) => {
            if (typeof f.session === 'string') {
              id = f.session;
              created.add(id);
            }
            if (f.step === 'network' && f.state === 'done') leaving.destroy();
          },
        })
        .catch((e: EdgeechoError) => e);
      assert.instance(await gone, EdgeechoError);
      assert.ok(id, 'the session id came in a status frame');
      const deadline = Date.now() + 20_000;
      while (store.get(id)?.state === 'creating' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.is(store.get(id)?.state, 'ready');
      ids.push(id);
    } finally {
      await daemon.shutdown();
      await removeSessions(driver, created);
    }
  });
}

baseTest.run();

/**
 * Warm pools through real daemon processes and the real engine: a create claims a parked session (pool hit) or
 * falls back to the cold path (miss) with the same result and the same frames after the claim; pooled plain and
 * segmented sessions deliver every frame in order; a burst larger than the pool; a parked container killed from
 * outside is replaced; kill -9 with a pool, then restarts with smaller settings (0 included) adopt or clean it
 * and leave nothing; admission evicts parked sessions for real ones and refuses rather than overcommits.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type Docker from 'dockerode';
import { connect, EdgeechoError, type Client } from '../../src/client/index.js';
import type { StatusFrame } from '../../protocol/messages.js';
import { LABEL_SESSION } from '../../src/runtime/driver.js';
import type { PoolModeView } from '../../src/sessions/pool.js';
import { dockerOrSkip } from '../support/docker.js';
import { consume, within } from '../emulators/run-emulator.js';
import { cleanupDaemons, labelledObjects, noneLeft, runLabel, startDaemonProcess, tempDataDir, TEST_LABEL, waitFor, type DaemonProcess, type SessionView } from '../../support/daemon-process.js';

const LABEL = runLabel('warm-pools');
const docker = await dockerOrSkip('integration/warm-pools');
const POOL_FILL_MS = 90_000;

type Pools = Record<'plain' | 'segmented', PoolModeView>;

interface Created {
  frames: StatusFrame[];
  result: { id: string; location: { host: string; port: number }; network: Record<string, unknown>; containers: Array<{ id: string; name: string; role: string }>; probe: Record<string, unknown> };
}

async function pools(client: Client): Promise<Pools> {
  return (await client.request<{ pool: Pools }>('resources', {})).pool;
}

/** Resolves once every pool holds its size in parked sessions. */
function full(client: Client): Promise<Pools> {
  return waitFor(
    'every pool full',
    async () => {
      const p = await pools(client);
      return p.plain.parked === p.plain.size && p.segmented.parked === p.segmented.size ? p : undefined;
    },
    POOL_FILL_MS,
    250,
  );
}

async function create(client: Client, args: Record<string, unknown>): Promise<Created> {
  const call = client.call('session.create', args, { timeoutMs: 120_000 });
  const frames: StatusFrame[] = [];
  for await (const frame of call.status) frames.push(frame);
  return { frames, result: (await call.result) as Created['result'] };
}

const poolOf = (c: Created): unknown => (c.frames.find((f) => f.step === 'session' && f.state === 'started')?.details as { pool?: unknown } | undefined)?.pool;
const stepsOf = (c: Created): string[] => [...new Set(c.frames.map((f) => f.step as string))];

/** Objects carrying this run's label whose session has no record: the parked ones. */
async function parkedSessions(d: Docker, client: Client): Promise<string[]> {
  const known = new Set((await client.request<{ sessions: Array<{ id: string }> }>('session.list', {})).sessions.map((s) => s.id));
  const containers = await d.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${LABEL}`] } });
  return [...new Set(containers.map((c) => c.Labels[LABEL_SESSION]!).filter((s) => s && !known.has(s)))].sort();
}

if (docker) {
  test('hit and miss: the same result shape, the same frames after the claim, and every frame delivered in order', async () => {
    let daemon: DaemonProcess | undefined;
    let client: Client | undefined;
    try {
      daemon = await startDaemonProcess({ label: LABEL, env: { EDGEECHO_POOL_PLAIN: '1', EDGEECHO_POOL_SEGMENTED: '1', EDGEECHO_PLAIN_GRACE_MS: '60000' } });
      client = await connect({ port: daemon.port });
      await full(client);

      const hit = await create(client, { mode: 'plain', count: 2000, payload_bytes: 100 });
      // The pool is refilling now: the next plain create finds it empty and goes cold.
      const miss = await create(client, { mode: 'plain', count: 2000, payload_bytes: 100 });
      assert.is(poolOf(hit), 'hit');
      assert.is(poolOf(miss), 'miss');
      assert.ok(stepsOf(hit).includes('claim') && !stepsOf(hit).some((s) => /^(admit|network|create |start )/.test(s)), `hit steps: ${stepsOf(hit)}`);
      assert.ok(!stepsOf(miss).includes('claim') && stepsOf(miss).includes('network'), `miss steps: ${stepsOf(miss)}`);
      const claim = hit.frames.find((f) => f.step === 'claim' && f.state === 'done');
      assert.is((claim?.details as { pool?: unknown } | undefined)?.pool, 'hit');
      // After the claim a hit reports exactly the steps a cold create ends with, with the same detail keys.
      const tail = (c: Created) => c.frames.filter((f) => f.state === 'done' && /^(ready |location|session)/.test(f.step as string)).map((f) => `${f.step}:${Object.keys(f.details ?? {}).sort()}`);
      assert.equal(tail(hit), tail(miss));
      for (const c of [hit, miss]) {
        assert.equal(Object.keys(c.result).sort(), ['containers', 'id', 'location', 'network', 'probe']);
        assert.equal(c.result.containers.map((k) => k.role), ['probe', 'stream']);
        assert.equal(c.result.probe, { port: 7000, probe_id: c.result.id, count: 2000, payload_bytes: 100, rate: 0 });
        assert.is(c.result.network.name, `edgeecho-${c.result.id}-net`);
      }
      // Every frame of both sessions, in order, then both complete.
      const read = await Promise.all([hit, miss].map((c) => within(60_000, `consuming ${c.result.id}`, consume(c.result.location.port).done)));
      for (const r of read) {
        assert.is(r.frames, 2000);
        assert.is(r.outOfOrder, 0);
        assert.is(r.firstSeq, 0);
      }
      for (const c of [hit, miss]) {
        const final = await client.request<SessionView>('session.watch', { id: c.result.id }, { timeoutMs: 60_000 });
        assert.is(final.state, 'completed', JSON.stringify(final.error));
      }

      const seg = await create(client, { mode: 'segmented', count: 5000 });
      assert.is(poolOf(seg), 'hit');
      assert.equal(seg.result.containers.map((k) => k.role), ['probe', 'stream', 'segmentation']);
      const final = await client.request<SessionView>('session.watch', { id: seg.result.id }, { timeoutMs: 60_000 });
      assert.is(final.state, 'completed', JSON.stringify(final.error));
      const segmentation = final.containers.find((c) => c.role === 'segmentation')!.stats!;
      assert.is(segmentation.frames, 5000);
      assert.is(segmentation.checksum_ok, true);
      assert.is(segmentation.lost, 0);

      const view = await pools(client);
      assert.is(view.plain.hits, 1);
      assert.is(view.plain.misses, 1);
      assert.is(view.segmented.hits, 1);
      await waitFor('the finished sessions leave nothing', noneLeft(docker, LABEL, [hit.result.id, miss.result.id, seg.result.id]), 20_000);
    } finally {
      await client?.close().catch(() => undefined);
      await cleanupDaemons(docker, LABEL, [daemon], daemon ? [daemon.dataDir] : []);
    }
  });

  test('burst past the pool, a parked container killed from outside, kill -9 and restarts with smaller pools: nothing leaks', async () => {
    const dataDir = tempDataDir();
    const daemons: DaemonProcess[] = [];
    let client: Client | undefined;
    const start = async (plain: number, segmented: number): Promise<Client> => {
      await client?.close().catch(() => undefined);
      const daemon = await startDaemonProcess({ label: LABEL, dataDir, env: { EDGEECHO_POOL_PLAIN: String(plain), EDGEECHO_POOL_SEGMENTED: String(segmented), EDGEECHO_PLAIN_GRACE_MS: '300' } });
      daemons.push(daemon);
      client = await connect({ port: daemon.port });
      return client;
    };
    try {
      let c = await start(3, 1);
      await full(c);
      // Five at once against three parked: three hits, two cold, all ready and all complete.
      const burst = await Promise.all([1, 2, 3, 4, 5].map(() => create(c, { mode: 'plain', count: 500 })));
      assert.equal(burst.map(poolOf).sort(), ['hit', 'hit', 'hit', 'miss', 'miss']);
      const ends = await Promise.all(burst.map((b) => c.request<SessionView>('session.watch', { id: b.result.id }, { timeoutMs: 60_000 })));
      assert.equal(ends.map((e) => e.state), ['completed', 'completed', 'completed', 'completed', 'completed'], JSON.stringify(ends.map((e) => e.error)));
      await full(c);

      // A parked probe killed from outside: the reaper hands it to the pool, which discards and replaces it.
      const before = await parkedSessions(docker, c);
      assert.is(before.length, 4, `expected 4 parked sessions, found ${before}`);
      const victim = before[0]!;
      const [probe] = await docker.listContainers({ filters: { label: [`${LABEL_SESSION}=${victim}`, 'io.edgeecho.role=probe'] } });
      await docker.getContainer(probe!.Id).kill();
      await waitFor(`parked ${victim} discarded`, noneLeft(docker, LABEL, [victim]), 30_000);
      const refilled = await full(c);
      assert.ok(refilled.plain.recycled + refilled.segmented.recycled >= 1, JSON.stringify(refilled));
      const parked = await parkedSessions(docker, c);
      assert.not.ok(parked.includes(victim));
      assert.is(parked.length, 4);

      // kill -9, then a restart with smaller pools: one parked plain session is adopted (same id), the rest removed.
      await daemons.at(-1)!.kill('SIGKILL');
      c = await start(1, 0);
      const reconciled = await daemons.at(-1)!.waitForLog((l) => l.msg === 'reconciled sessions with the runtime');
      assert.equal(reconciled.parked, { adopted: 1, discarded: 3 });
      const kept = await parkedSessions(docker, c);
      assert.is(kept.length, 1);
      assert.ok(parked.includes(kept[0]!), `expected an adopted session from ${parked}, found ${kept}`);
      assert.equal(await labelledObjects(docker, LABEL, parked.filter((p) => p !== kept[0])), { containers: [], networks: [] });
      const claimed = await create(c, { mode: 'plain', count: 100 });
      assert.is(poolOf(claimed), 'hit');
      assert.is(claimed.result.id, kept[0]);
      assert.is((await c.request<SessionView>('session.watch', { id: claimed.result.id }, { timeoutMs: 60_000 })).state, 'completed');

      // kill -9 while it refills, then pools off: everything parked (or being parked) goes.
      await daemons.at(-1)!.kill('SIGKILL');
      c = await start(0, 0);
      await waitFor('no labelled object left', async () => {
        const left = await labelledObjects(docker, LABEL);
        return left.containers.length + left.networks.length === 0 ? true : undefined;
      }, 30_000);
      assert.equal(await pools(c).catch(() => undefined), undefined, 'with both pools 0 and nothing parked, resources shows no pool');
    } finally {
      await client?.close().catch(() => undefined);
      await cleanupDaemons(docker, LABEL, daemons, [dataDir]);
    }
  });

  test('shutdown leaves parked sessions for the next start, unless EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN removes them', async () => {
    const dataDir = tempDataDir();
    const daemons: DaemonProcess[] = [];
    let client: Client | undefined;
    try {
      daemons.push(await startDaemonProcess({ label: LABEL, dataDir, env: { EDGEECHO_POOL_SEGMENTED: '1' } }));
      client = await connect({ port: daemons[0]!.port });
      await full(client);
      const parked = await parkedSessions(docker, client);
      await client.close();
      assert.is((await daemons[0]!.kill('SIGTERM')).code, 0);
      assert.is((await labelledObjects(docker, LABEL, parked)).containers.length, 3, 'a plain shutdown leaves the parked session running');

      daemons.push(await startDaemonProcess({ label: LABEL, dataDir, env: { EDGEECHO_POOL_SEGMENTED: '1', EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN: 'true' } }));
      const reconciled = await daemons[1]!.waitForLog((l) => l.msg === 'reconciled sessions with the runtime');
      assert.equal(reconciled.parked, { adopted: 1, discarded: 0 });
      assert.is((await daemons[1]!.kill('SIGTERM')).code, 0);
      assert.equal(await labelledObjects(docker, LABEL), { containers: [], networks: [] });
    } finally {
      await client?.close().catch(() => undefined);
      await cleanupDaemons(docker, LABEL, daemons, [dataDir]);
    }
  });

  test('admission: parked sessions hold their reservations, yield to a cold create, and never make room appear', async () => {
    let daemon: DaemonProcess | undefined;
    let client: Client | undefined;
    try {
      daemon = await startDaemonProcess({ label: LABEL, args: ['--max-sessions', '2'], env: { EDGEECHO_POOL_PLAIN: '2', EDGEECHO_PLAIN_GRACE_MS: '60000' } });
      client = await connect({ port: daemon.port });
      await full(client);
      const admission = async () => (await client!.request<{ admission: { sessions: number; max_sessions: number } }>('resources', {})).admission;
      assert.is((await admission()).sessions, 2, 'two parked sessions hold two of two slots');

      // A segmented create misses (no segmented pool) and gets its room by evicting one parked plain session.
      const seg = await create(client, { mode: 'segmented', count: 100 });
      assert.is(poolOf(seg), 'off');
      const plain = await create(client, { mode: 'plain', count: 100 });
      assert.is(poolOf(plain), 'hit');
      assert.ok((await admission()).sessions <= 2);
      // Both slots hold live sessions now and nothing is parked: the next create is refused, not overcommitted.
      let refused: EdgeechoError | undefined;
      await create(client, { mode: 'plain', count: 100 }).catch((err: EdgeechoError) => (refused = err));
      assert.is(refused?.code, 'RESOURCE_EXHAUSTED', refused?.message);
      assert.is((refused?.details as { resource?: string }).resource, 'sessions');
      const view = await pools(client);
      assert.is(view.plain.parked, 0);
      assert.is((await admission()).sessions, 2);

      // Once a session ends the pool takes the room back. The segmented session (count 100) may end meanwhile and
      // give its room too: both parks can land between two looks, so at least one, never past the limit.
      await client.request('session.stop', { id: plain.result.id }, { timeoutMs: 60_000 });
      await waitFor('the pool refilled into the freed slot', async () => ((await pools(client!)).plain.parked >= 1 ? true : undefined), POOL_FILL_MS);
      assert.is((await admission()).sessions, 2);
      await client.request('session.stop', { id: seg.result.id }, { timeoutMs: 60_000 });
    } finally {
      await client?.close().catch(() => undefined);
      await cleanupDaemons(docker, LABEL, [daemon], daemon ? [daemon.dataDir] : []);
    }
  });

  test('resource sampling calls stats for live sessions only: parked containers cost the engine nothing', async () => {
    let daemon: DaemonProcess | undefined;
    let client: Client | undefined;
    try {
      // A sample every second, so the test sees several.
      daemon = await startDaemonProcess({ label: LABEL, env: { EDGEECHO_POOL_PLAIN: '1', EDGEECHO_POOL_SEGMENTED: '1', EDGEECHO_RESOURCES_CRON: '* * * * * *', EDGEECHO_LOG_LEVEL: 'debug', EDGEECHO_PLAIN_GRACE_MS: '60000' } });
      client = await connect({ port: daemon.port });
      await full(client);
      const sampledSince = (from: number) => daemon!.waitForLog((l) => l.msg === 'sampling runtime usage' && (l.time as number) > from && l.running === 5, 10_000);
      // Five parked containers run (plain: probe, stream; segmented: three), and none is asked for stats.
      const idle = await sampledSince(Date.now());
      assert.is(idle.sampled, 0);
      // A live session's containers are sampled; the refilled parked ones still are not.
      const live = await create(client, { mode: 'plain', count: 100_000, rate: 1000 });
      await full(client);
      const from = Date.now();
      const busy = await daemon.waitForLog((l) => l.msg === 'sampling runtime usage' && (l.time as number) > from && l.running === 7, 10_000);
      assert.is(busy.sampled, 2);
      const usage = await client.request<{ sessions: Array<{ session: string; containers: number }> }>('resources', { fresh: true });
      assert.equal(usage.sessions.map((s) => [s.session, s.containers]), [[live.result.id, 2]]);
      await client.request('session.stop', { id: live.result.id }, { timeoutMs: 60_000 });
    } finally {
      await client?.close().catch(() => undefined);
      await cleanupDaemons(docker, LABEL, [daemon], daemon ? [daemon.dataDir] : []);
    }
  });
}

test.run();

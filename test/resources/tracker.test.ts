import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseMeminfo, parseProcStat, ResourceTracker, type HostReaders } from '../../src/resources/tracker.js';
import type { Scheduler } from '../../src/scheduler.js';
import type { ContainerState, ContainerUsage, ManagedObjects } from '../../src/runtime/driver.js';
import { silentLogger } from '../../src/log.js';

function fakeReaders(): HostReaders & { stat: string } {
  const r = {
    stat: 'cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n',
    procStat: async () => r.stat,
    meminfo: async () => 'MemTotal:       2048 kB\nMemFree:  100 kB\nMemAvailable:   1024 kB\n',
    loadavg: (): [number, number, number] => [0.5, 0.25, 0.125],
    statfs: async () => ({ bsize: 4096, blocks: 1000, bavail: 250 }),
    cpuCount: () => 2,
  };
  return r;
}

const container = (id: string, session: string | undefined, running: boolean): ContainerState => ({
  id,
  name: `edgeecho-${session}-${id}`,
  session,
  running,
  status: running ? 'running' : 'exited',
  exitCode: running ? null : 0,
  oomKilled: false,
  startedAt: null,
  finishedAt: null,
});

function fakeDriver(objects: ManagedObjects | Error, usage: Record<string, ContainerUsage | Error>) {
  return {
    name: 'fake',
    statsCalls: 0,
    async listManaged() {
      if (objects instanceof Error) throw objects;
      return objects;
    },
    async stats(id: string) {
      this.statsCalls++;
      const u = usage[id];
      if (!u || u instanceof Error) throw u ?? new Error('no such container');
      return u;
    },
  };
}

test('parseProcStat sums the aggregate line and counts iowait as idle', () => {
  assert.equal(parseProcStat('cpu  1 2 3 4 5 6 7 8 9 10\n'), { total: 36, idle: 9 });
  assert.throws(() => parseProcStat('intr 1 2\n'), /expected a "cpu " line/);
});

test('parseMeminfo reads kB into bytes and falls back without MemAvailable', () => {
  assert.equal(parseMeminfo('MemTotal: 10 kB\nMemAvailable: 4 kB\n'), { total: 10240, available: 4096 });
  assert.equal(parseMeminfo('MemTotal: 10 kB\nMemFree: 1 kB\nCached: 2 kB\n'), { total: 10240, available: 3072 });
});

test('host CPU is the busy share between samples; memory, load and disk come from the readers', async () => {
  const readers = fakeReaders();
  const tracker = new ResourceTracker({ driver: fakeDriver({ containers: [], networks: [] }, {}), dataDir: '/data', cron: '* * * * * *', log: silentLogger, readers, now: () => 42 });
  const first = await tracker.sample();
  assert.is(first.host.cpuPercent, null);
  readers.stat = 'cpu  130 0 130 840 0 0 0 0 0 0\n'; // +60 busy of +100
  const second = await tracker.sample();
  assert.is(second.host.cpuPercent, 60);
  assert.is(second.at, 42);
  assert.is(second.host.memoryAvailableBytes, 1024 * 1024);
  assert.is(second.host.memoryTotalBytes, 2048 * 1024);
  assert.equal(second.host.load, [0.5, 0.25, 0.13]);
  assert.is(second.host.diskFreeBytes, 250 * 4096);
  assert.is(second.host.diskTotalBytes, 1000 * 4096);
  assert.is(second.host.cpus, 2);
  assert.is(tracker.availableMemory(), 1024 * 1024);
  assert.is(tracker.latest(), second);
});

test('session usage is summed over running containers; exited and vanished containers count nothing', async () => {
  const driver = fakeDriver(
    {
      containers: [container('a1', 'a', true), container('a2', 'a', true), container('b1', 'b', true), container('b2', 'b', false), container('gone', 'b', true)],
      networks: [{ id: 'n', name: 'edgeecho-a-net', session: 'a', created: '' }],
    },
    {
      a1: { cpuPercent: 10.5, memoryBytes: 100, memoryLimitBytes: 1000 },
      a2: { cpuPercent: 20.25, memoryBytes: 50, memoryLimitBytes: 500 },
      b1: { cpuPercent: 1, memoryBytes: 7, memoryLimitBytes: 70 },
      gone: new Error('404'),
    },
  );
  const tracker = new ResourceTracker({ driver, dataDir: '/data', cron: '* * * * * *', log: silentLogger, readers: fakeReaders() });
  const snap = await tracker.sample();
  const none = { containers: 0, running: 0, networks: 0 };
  assert.equal(snap.engine, { name: 'fake', reachable: true, running: 4, containers: 5, networks: 1, foreign: none, unlabelled: none });
  assert.equal(snap.sessions, [
    { session: 'a', containers: 2, cpuPercent: 30.75, memoryBytes: 150, memoryLimitBytes: 1500 },
    { session: 'b', containers: 1, cpuPercent: 1, memoryBytes: 7, memoryLimitBytes: 70 },
  ]);
  assert.is(driver.statsCalls, 4);
});

test('an unreachable engine is reported, not thrown, and the host is still sampled', async () => {
  const tracker = new ResourceTracker({ driver: fakeDriver(new Error('connect ENOENT /var/run/docker.sock'), {}), dataDir: '/data', cron: '* * * * * *', log: silentLogger, readers: fakeReaders() });
  const snap = await tracker.sample();
  assert.is(snap.engine.reachable, false);
  assert.match(snap.engine.error!, /ENOENT/);
  assert.equal(snap.sessions, []);
  assert.is(snap.host.memoryAvailableBytes, 1024 * 1024);
});

test('start samples at once and on every scheduled tick; concurrent samples are joined; stop cancels', async () => {
  const ticks: Array<() => void> = [];
  let cancelled = 0;
  const scheduler: Scheduler = (cron, _name, tick) => {
    assert.is(cron, '*/5 * * * * *');
    ticks.push(tick);
    return { cancel: () => void cancelled++ };
  };
  const driver = fakeDriver({ containers: [container('a1', 'a', true)], networks: [] }, { a1: { cpuPercent: 1, memoryBytes: 1, memoryLimitBytes: 1 } });
  let t = 0;
  const tracker = new ResourceTracker({ driver, dataDir: '/data', cron: '*/5 * * * * *', log: silentLogger, readers: fakeReaders(), scheduler, now: () => ++t });
  const first = await tracker.start();
  assert.is(first.at, 1);
  assert.is(ticks.length, 1);
  const [x, y] = await Promise.all([tracker.sample(), tracker.sample()]);
  assert.is(x, y);
  assert.is(driver.statsCalls, 2);
  ticks[0]!();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.is(tracker.latest()!.at, 3);
  tracker.stop();
  assert.is(cancelled, 1);
});

test('a session sampled at ready shows at once and survives a full sample that began before it; an ended one is dropped', async () => {
  const objects: ManagedObjects = { containers: [container('a1', 'a', true)], networks: [] };
  const usage: Record<string, ContainerUsage> = { a1: { cpuPercent: 5, memoryBytes: 100, memoryLimitBytes: 1000 }, b1: { cpuPercent: 7, memoryBytes: 200, memoryLimitBytes: 2000 } };
  const driver = fakeDriver(objects, usage);
  let now = 0;
  let release!: () => void;
  const readers = fakeReaders();
  const tracker = new ResourceTracker({ driver, dataDir: '/', cron: '* * * * * *', log: silentLogger, readers, scheduler: () => ({ cancel() {} }), now: () => now });
  await tracker.start();
  assert.equal(tracker.latest()!.sessions.map((s) => s.session), ['a']);
  // A full sample starts (listing before b exists) and is held while b turns ready and is sampled on its own.
  const gate = new Promise<void>((r) => (release = r));
  const procStat = readers.procStat;
  readers.procStat = async () => (await gate, procStat());
  now = 10;
  const full = tracker.sample();
  now = 20;
  objects.containers.push(container('b1', 'b', true));
  assert.is((await tracker.sampleSession('b'))?.memoryBytes, 200);
  assert.equal(tracker.latest()!.sessions.map((s) => s.session), ['a', 'b']);
  objects.containers.splice(1, 1);
  release();
  await full;
  assert.equal(tracker.latest()!.sessions.map((s) => s.session), ['a', 'b'], 'the older full listing does not hide b');
  now = 30;
  tracker.forget('a');
  assert.equal(tracker.latest()!.sessions.map((s) => s.session), ['b']);
  now = 40;
  await tracker.sample();
  assert.equal(tracker.latest()!.sessions.map((s) => s.session), ['a'], 'a full sample begun after both readings is the truth again');
});

test('parked sessions get no stats call; the engine counts still include their containers', async () => {
  const driver = fakeDriver(
    { containers: [container('a1', 'a', true), container('p1', 'parked', true), container('p2', 'parked', true), container('x', undefined, true)], networks: [] },
    { a1: { cpuPercent: 3, memoryBytes: 30, memoryLimitBytes: 300 }, x: { cpuPercent: 1, memoryBytes: 1, memoryLimitBytes: 1 } },
  );
  const tracker = new ResourceTracker({ driver, dataDir: '/data', cron: '* * * * * *', log: silentLogger, readers: fakeReaders(), unsampled: (s) => s === 'parked' });
  const snap = await tracker.sample();
  assert.is(driver.statsCalls, 2, 'a1 and the unlabelled x only');
  assert.is(snap.engine.running, 4);
  assert.equal(snap.sessions.map((s) => s.session), ['a']);
});

test('a scheduled sample waits for beforeScheduled; a sample asked for does not', async () => {
  const ticks: Array<() => void> = [];
  const scheduler: Scheduler = (_cron, _name, tick) => (ticks.push(tick), { cancel() {} });
  const driver = fakeDriver({ containers: [container('a1', 'a', true)], networks: [] }, { a1: { cpuPercent: 1, memoryBytes: 1, memoryLimitBytes: 1 } });
  let open!: () => void;
  let gate = Promise.resolve();
  let t = 0;
  const tracker = new ResourceTracker({ driver, dataDir: '/data', cron: '* * * * * *', log: silentLogger, readers: fakeReaders(), scheduler, now: () => ++t, beforeScheduled: () => gate });
  await tracker.start();
  assert.is(driver.statsCalls, 1);
  gate = new Promise<void>((r) => (open = r));
  ticks[0]!();
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  assert.is(driver.statsCalls, 1, 'held while claims run');
  await tracker.sample();
  assert.is(driver.statsCalls, 2);
  open();
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  assert.is(driver.statsCalls, 3, 'runs once they ended');
});

test.run();

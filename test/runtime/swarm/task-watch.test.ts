/** Swarm events from listings: starts, ends with exit codes, lost nodes, removed services, replay from `since`. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../src/log.js';
import type { RuntimeEvent } from '../../../src/runtime/driver.js';
import { TaskWatch, type SwarmListing } from '../../../src/runtime/swarm/task-watch.js';
import { localExit } from '../../../src/runtime/swarm/local-exits.js';
import type { SwarmNode, SwarmService, SwarmTask } from '../../../src/runtime/swarm/swarm-objects.js';

const labels = { 'io.edgeecho.managed': 'true', 'io.edgeecho.session': 'abc', 'io.edgeecho.role': 'probe', 'io.edgeecho.instance': 'i1' };
const service: SwarmService = { ID: 's1', Spec: { Name: 'edgeecho-abc-probe', Labels: labels } };
const nodes = (state = 'ready'): SwarmNode[] => [{ ID: 'n1', Spec: {}, Description: { Hostname: 'edge-1' }, Status: { State: state } }];
const task = (state: string, exitCode?: number): SwarmTask => ({
  ID: 't1',
  ServiceID: 's1',
  NodeID: 'n1',
  Status: { State: state, Timestamp: '2026-11-30T10:00:05Z', ...(exitCode !== undefined ? { ContainerStatus: { ExitCode: exitCode } } : {}) },
});

function watchOf(): { watch: TaskWatch; events: RuntimeEvent[] } {
  const watch = new TaskWatch(async () => ({ services: [], tasks: [], nodes: [] }), { intervalMs: 60_000, log: silentLogger, now: () => 1_800_000_000_000 });
  const events: RuntimeEvent[] = [];
  const controller = new AbortController();
  void (async () => {
    for await (const e of watch.events({ signal: controller.signal })) events.push(e);
  })();
  return { watch, events };
}

const listing = (tasks: SwarmTask[], state = 'ready', services = [service]): SwarmListing => ({ services, tasks, nodes: nodes(state) });
const tick = () => new Promise((r) => setImmediate(r));

test('running then complete: start, then die with the exit code, labelled; a removed service is destroy', async () => {
  const { watch, events } = watchOf();
  await tick();
  watch.observe(listing([]));
  watch.observe(listing([task('running')]));
  watch.observe(listing([task('complete', 0)]));
  watch.observe(listing([task('complete', 0)]));
  watch.observe(listing([], 'ready', []));
  await tick();
  assert.equal(
    events.map((e) => [e.action, e.id, e.exitCode, e.session, e.role, e.instance]),
    [
      ['start', 's1', undefined, 'abc', 'probe', 'i1'],
      ['die', 's1', 0, 'abc', 'probe', 'i1'],
      ['destroy', 's1', undefined, 'abc', 'probe', 'i1'],
    ],
  );
  watch.close();
});

test('a live task whose node goes down dies once, without an exit code', async () => {
  const { watch, events } = watchOf();
  await tick();
  watch.observe(listing([task('running')]));
  watch.observe(listing([task('running')], 'down'));
  watch.observe(listing([task('running')], 'down'));
  await tick();
  assert.equal(events.map((e) => [e.action, e.exitCode]), [['start', undefined], ['die', undefined]]);
  watch.close();
});

test('unknown (a leader change) ends nothing; down does, once, and again after the node came back; a removed node too', async () => {
  const { watch, events } = watchOf();
  await tick();
  watch.observe(listing([task('running')]));
  watch.observe(listing([task('running')], 'unknown'));
  watch.observe(listing([task('running')], 'disconnected'));
  watch.observe(listing([task('running')], 'down'));
  watch.observe(listing([task('running')], 'ready'));
  watch.observe(listing([task('running')], 'down'));
  watch.observe({ services: [service], tasks: [task('running')], nodes: [] });
  await tick();
  assert.equal(events.map((e) => e.action), ['start', 'die', 'die']);
  watch.close();
});

test('a listing begun before a removal does not bring the service back', async () => {
  const { watch, events } = watchOf();
  await tick();
  watch.observe(listing([task('running')]));
  watch.removed('s1');
  watch.observe(listing([task('complete', 0)]));
  await tick();
  assert.equal(events.map((e) => e.action), ['start', 'destroy']);
  watch.close();
});

test('an exit this node\'s engine reports is a die at once; the manager\'s later account of it is not a second', async () => {
  const { watch, events } = watchOf();
  await tick();
  watch.observe(listing([task('running')]));
  const line = JSON.stringify({
    Type: 'container',
    Action: 'die',
    timeNano: 5,
    Actor: { ID: 'c1', Attributes: { 'com.docker.swarm.service.id': 's1', 'com.docker.swarm.task.id': 't1', exitCode: '0', ...labels } },
  });
  const exit = localExit(line)!;
  assert.equal([exit.service, exit.task, exit.exitCode, exit.labels['io.edgeecho.session']], ['s1', 't1', 0, 'abc']);
  assert.is(localExit(JSON.stringify({ Type: 'container', Action: 'die', Actor: { Attributes: {} } })), null);
  watch.localExit(exit);
  assert.is(watch.exitOf('t1'), 0);
  watch.observe(listing([task('complete', 0)]));
  await tick();
  assert.equal(events.map((e) => [e.action, e.exitCode, e.session]), [['start', undefined, 'abc'], ['die', 0, 'abc']]);
  watch.close();
});

test('events `since` a moment in the past are replayed from the journal; ended tasks seen first are history', async () => {
  const watch = new TaskWatch(async () => ({ services: [], tasks: [], nodes: [] }), { intervalMs: 60_000, log: silentLogger });
  watch.observe(listing([task('failed', 3)]));
  watch.removed('s1');
  const controller = new AbortController();
  const seen: RuntimeEvent[] = [];
  for await (const e of watch.events({ since: Date.parse('2026-11-30T10:00:00Z') / 1000, signal: controller.signal })) {
    seen.push(e);
    if (e.action === 'destroy') break;
  }
  assert.equal(seen.map((e) => [e.action, e.exitCode]), [['die', 3], ['destroy', undefined]]);
  assert.is(seen[0]!.timeNano, Date.parse('2026-11-30T10:00:05Z') * 1e6);
  watch.close();
});

test('a listing that fails ends the subscribers\' streams with its error (the reaper reconnects)', async () => {
  const watch = new TaskWatch(async () => Promise.reject(new Error('manager gone')), { intervalMs: 60_000, log: silentLogger });
  const controller = new AbortController();
  const iterator = watch.events({ signal: controller.signal })[Symbol.asyncIterator]();
  const next = iterator.next();
  await watch.poll();
  await next.then(
    () => assert.unreachable('expected the stream to fail'),
    (err: Error) => assert.match(err.message, 'manager gone'),
  );
  watch.close();
});

test.run();

/**
 * Parked sessions' records and lives (sessions/parking.ts over the SQLite parked table) on the in-memory runtime:
 * a claim turns the parked row into a session record in one transaction, a discard removes every object of the
 * id (recorded or only labelled) and its reservation, a failed discard keeps the row for a retry, adoption keeps
 * only whole parked sessions, and a container still parked is told from one that printed its ready line.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { Admission } from '../../src/resources/admission.js';
import { SqliteParkedStore } from '../../src/sessions/parked-store.js';
import { Parking } from '../../src/sessions/parking.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { FakeRuntime } from '../support/fake-runtime.js';

const limits = { memoryBytes: 100, nanoCpus: 1e9, pids: 8 };

function setup() {
  const runtime = new FakeRuntime();
  const store = openSessionStore(':memory:');
  const parked = new SqliteParkedStore(store.db);
  const admission = new Admission({ capacityMemory: 1000, capacityCpus: 100, minFreeMemory: 0, maxSessions: 100, limits: { probe: limits, stream: limits, segmentation: limits }, availableMemory: () => null });
  const parking = new Parking({ driver: runtime, store, parked, admission, config: loadConfig().config, log: silentLogger });
  return { runtime, store, parked, admission, parking, [Symbol.dispose]: () => store.close() };
}

function parkedPlain(t: ReturnType<typeof setup>, id: string) {
  t.parked.add(id, 'plain', 1000);
  t.parked.setNetwork(id, { id: `${id}-net`, name: `edgeecho-${id}-net`, subnet: '10.213.0.0/28' });
  t.runtime.addNetwork(id);
  const containers = (['probe', 'stream'] as const).map((role) => {
    t.runtime.addContainer(id, role);
    return { id: `${id}-${role}`, name: `edgeecho-${id}-${role}`, role };
  });
  t.admission.admit(id, ['probe', 'stream']);
  return t.parked.markParked(id, { host: '127.0.0.1', port: 40000 }, containers);
}

test('claimRecords: the parked row becomes a creating session with its network and containers, in one transaction', () => {
  using t = setup();
  const entry = parkedPlain(t, 'p1');
  t.parking.claimRecords(entry, { id: 'p1', mode: 'plain', count: 5, payloadBytes: 8, rate: null });
  assert.is(t.parked.get('p1'), undefined);
  const record = t.store.get('p1')!;
  assert.is(record.state, 'creating');
  assert.is(record.network?.name, 'edgeecho-p1-net');
  assert.equal(record.containers.map((c) => c.role), ['probe', 'stream']);
  assert.ok(t.admission.has('p1'), 'the reservation carries over to the session');

  // A claim that cannot be recorded leaves the parked row as it was.
  const other = parkedPlain(t, 'p2');
  assert.throws(() => t.parking.claimRecords(other, { id: 'p1', mode: 'plain', count: 5, payloadBytes: 8, rate: null }));
  assert.ok(t.parked.get('p2'));
});

test('discard removes recorded and merely labelled objects, releases the reservation and drops the row', async () => {
  using t = setup();
  parkedPlain(t, 'p1');
  t.runtime.addContainer('p1', 'segmentation', true, 'unrecorded');
  await t.parking.discard('p1', 'test');
  assert.is(t.runtime.containers.size, 0);
  assert.is(t.runtime.networks.size, 0);
  assert.not.ok(t.admission.has('p1'));
  assert.is(t.parked.get('p1'), undefined);
});

test('a discard that cannot remove an object keeps the row, so the sweep can ask again', async () => {
  using t = setup();
  parkedPlain(t, 'p1');
  t.runtime.removeContainer = async () => {
    throw new Error('engine gone');
  };
  await t.parking.discard('p1', 'test');
  assert.ok(t.parked.get('p1'));
  assert.ok(t.parking.isParked('p1'));
});

test('reconcile adopts whole parked sessions and discards one cut off while parking or missing a container', async () => {
  using t = setup();
  parkedPlain(t, 'whole');
  parkedPlain(t, 'broken');
  t.runtime.exit('broken-stream');
  t.parked.add('midway', 'plain');
  t.runtime.addNetwork('midway');
  const report = await t.parking.reconcile(await t.runtime.listManaged());
  assert.equal(report.adopted.map((e) => e.id), ['whole']);
  assert.equal(report.discarded.sort(), ['broken', 'midway']);
  assert.equal(t.parked.list().map((e) => e.id), ['whole']);
  assert.equal([...t.runtime.containers.keys()].sort(), ['whole-probe', 'whole-stream']);
});

test('anyStillParked: a parked line without a ready line after it', async () => {
  using t = setup();
  const out: Record<string, string> = { a: '{"event":"parked","role":"probe"}\n{"event":"ready","role":"probe"}\n', b: '{"event":"parked","role":"stream"}\n', c: '{"event":"ready"}\n' };
  t.runtime.logs = async (id: string) => out[id] ?? '';
  assert.is(await t.parking.anyStillParked(['a', 'c']), false);
  assert.is(await t.parking.anyStillParked(['a', 'b']), true);
});

test.run();

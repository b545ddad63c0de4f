import { test } from 'uvu';
import * as assert from 'uvu/assert';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSessionStore, readInstanceId, SESSION_DB_FILE } from '../../src/sessions/sqlite-store.js';
import { INSTANCE_ID_PATTERN } from '../../src/sessions/session-id.js';
import { migrate, MIGRATIONS, SCHEMA_VERSION, type Migration } from '../../src/sessions/sqlite-migrations.js';
import { EdgeechoError } from '../../protocol/errors.js';
import type { SessionSpec } from '../../src/workflow/session-spec.js';

function tempDir(): { dir: string; path: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-store-'));
  return { dir, path: join(dir, 'nested', SESSION_DB_FILE), [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

const plain = (id: string): SessionSpec => ({ id, mode: 'plain', count: 100, payloadBytes: 512, rate: null });

test('a new file is migrated from empty to the latest schema in WAL mode', () => {
  using tmp = tempDir();
  const store = openSessionStore(tmp.path);
  try {
    assert.is(store.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.is(store.db.pragma('journal_mode', { simple: true }), 'wal');
    const tables = store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>;
    assert.ok(['containers', 'sessions', 'transitions'].every((t) => tables.some((r) => r.name === t)));
  } finally {
    store.close();
  }
});

test('the instance id is made once and kept with the records; a file of the version before instances gets one and keeps its sessions', () => {
  using tmp = tempDir();
  assert.is(readInstanceId(tmp.path), null, 'no file yet');
  // A file as the version before instances wrote it: schema 1, one session.
  const old = openSessionStore(tmp.path);
  old.create(plain('s1'), 1000);
  old.db.exec('DROP TABLE meta; DROP TABLE parked');
  old.db.pragma('user_version = 1');
  old.close();
  assert.is(readInstanceId(tmp.path), null, 'a file without the meta table has no instance yet');
  const first = openSessionStore(tmp.path);
  const id = first.instanceId();
  assert.match(id, INSTANCE_ID_PATTERN);
  assert.is(first.instanceId(), id);
  assert.is(first.get('s1')!.state, 'creating');
  first.close();
  assert.is(readInstanceId(tmp.path), id);
  const second = openSessionStore(tmp.path);
  try {
    assert.is(second.instanceId(), id);
  } finally {
    second.close();
  }
  using other = tempDir();
  const fresh = openSessionStore(other.path);
  try {
    assert.is.not(fresh.instanceId(), id, 'another data dir is another instance');
  } finally {
    fresh.close();
  }
});

test('a damaged instance id is refused, not replaced: the objects labelled with the old one would be orphaned', () => {
  using tmp = tempDir();
  const store = openSessionStore(tmp.path);
  try {
    store.db.prepare("INSERT INTO meta (key, value) VALUES ('instance', 'Not An Id')").run();
    assert.throws(() => store.instanceId(), /expected an instance id of 12 base32 characters in table meta, found "Not An Id"/);
  } finally {
    store.close();
  }
});

test('reopening keeps records and does not re-run migrations', () => {
  using tmp = tempDir();
  const first = openSessionStore(tmp.path);
  first.create(plain('s1'), 1000);
  first.putContainer('s1', { id: 'c1', name: 'edgeecho-s1-stream', role: 'stream', startedAt: null, finishedAt: null, exitCode: null, stats: null }, 1001);
  first.transition('s1', 'ready', undefined, { location: { host: '127.0.0.1', port: 40000 } }, 1002);
  first.close();
  const second = openSessionStore(tmp.path);
  try {
    const rec = second.get('s1');
    assert.ok(rec);
    assert.is(rec.state, 'ready');
    assert.equal(rec.location, { host: '127.0.0.1', port: 40000 });
    assert.is(rec.containers.length, 1);
    assert.equal(migrate(second.db), []);
  } finally {
    second.close();
  }
});

test('a later migration runs once on an older file and a newer file is refused', () => {
  using tmp = tempDir();
  openSessionStore(tmp.path).close();
  const db = new Database(tmp.path);
  try {
    const extra: Migration = { version: SCHEMA_VERSION + 1, summary: 'test column', up: (d) => d.exec('ALTER TABLE sessions ADD COLUMN note TEXT') };
    const all = [...MIGRATIONS, extra];
    assert.equal(migrate(db, all), [SCHEMA_VERSION + 1]);
    assert.equal(migrate(db, all), []);
    assert.is(db.pragma('user_version', { simple: true }), SCHEMA_VERSION + 1);
    db.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
  } finally {
    db.close();
  }
  assert.throws(() => openSessionStore(tmp.path), /newer than this edgeecho supports/);
});

test('transitions are recorded with their times; a terminal state sets endedAt and is final', () => {
  const store = openSessionStore(':memory:');
  try {
    const created = store.create(plain('s1'), 10);
    assert.is(created.state, 'creating');
    assert.is(created.createdAt, 10);
    store.transition('s1', 'ready', undefined, undefined, 20);
    store.transition('s1', 'stopping', 'session.stop', undefined, 30);
    const done = store.transition('s1', 'failed', 'exit 3', { error: { code: 'INTERNAL', message: 'stream exited 3' } }, 40);
    assert.equal(done.transitions, [
      { state: 'creating', at: 10 },
      { state: 'ready', at: 20 },
      { state: 'stopping', at: 30, reason: 'session.stop' },
      { state: 'failed', at: 40, reason: 'exit 3' },
    ]);
    assert.is(done.endedAt, 40);
    assert.is(done.updatedAt, 40);
    assert.equal(done.error, { code: 'INTERNAL', message: 'stream exited 3' });
    try {
      store.transition('s1', 'completed', undefined, undefined, 50);
      assert.unreachable('a terminal record moved again');
    } catch (err) {
      assert.instance(err, EdgeechoError);
      assert.is((err as EdgeechoError).code, 'CONFLICT');
    }
    assert.is(store.get('s1')!.state, 'failed');
  } finally {
    store.close();
  }
});

test('unknown ids are NOT_FOUND and duplicate ids CONFLICT', () => {
  const store = openSessionStore(':memory:');
  try {
    store.create(plain('s1'));
    assert.is(store.get('nope'), undefined);
    for (const call of [() => store.transition('nope', 'ready'), () => store.update('nope', {}), () => store.putContainer('nope', { id: 'c', name: 'n', role: 'probe', startedAt: null, finishedAt: null, exitCode: null, stats: null })]) {
      try {
        call();
        assert.unreachable('expected NOT_FOUND');
      } catch (err) {
        assert.is((err as EdgeechoError).code, 'NOT_FOUND');
      }
    }
    try {
      store.create(plain('s1'));
      assert.unreachable('expected CONFLICT');
    } catch (err) {
      assert.is((err as EdgeechoError).code, 'CONFLICT');
    }
  } finally {
    store.close();
  }
});

test('containers keep insertion order and are updated in place with exit codes and stats', () => {
  const store = openSessionStore(':memory:');
  try {
    store.create({ id: 's1', mode: 'segmented', count: 5, payloadBytes: 64, rate: 25 });
    const base = { startedAt: '2024-01-01T00:00:00Z', finishedAt: null, exitCode: null, stats: null };
    store.putContainer('s1', { id: 'p', name: 'edgeecho-s1-probe', role: 'probe', ...base });
    store.putContainer('s1', { id: 's', name: 'edgeecho-s1-stream', role: 'stream', ...base });
    store.putContainer('s1', { id: 'g', name: 'edgeecho-s1-segmentation', role: 'segmentation', ...base });
    const rec = store.putContainer('s1', { id: 's', name: 'edgeecho-s1-stream', role: 'stream', startedAt: base.startedAt, finishedAt: '2024-01-01T00:00:05Z', exitCode: 0, stats: { frames: 5 } });
    assert.equal(rec.containers.map((c) => c.id), ['p', 's', 'g']);
    assert.equal(rec.containers[1], { id: 's', name: 'edgeecho-s1-stream', role: 'stream', startedAt: base.startedAt, finishedAt: '2024-01-01T00:00:05Z', exitCode: 0, stats: { frames: 5 } });
    assert.is(rec.rate, 25);
    assert.is(rec.mode, 'segmented');
  } finally {
    store.close();
  }
});

test('update patches only the fields given', () => {
  const store = openSessionStore(':memory:');
  try {
    store.create(plain('s1'));
    store.update('s1', { network: { id: 'n1', name: 'edgeecho-s1-net', subnet: '10.213.0.0/28' }, probe: { codec: 'h264' } });
    const rec = store.update('s1', { probe: null });
    assert.equal(rec.network, { id: 'n1', name: 'edgeecho-s1-net', subnet: '10.213.0.0/28' });
    assert.is(rec.probe, null);
  } finally {
    store.close();
  }
});

test('list filters by state and creation time, newest first, with a limit', () => {
  const store = openSessionStore(':memory:');
  try {
    for (let i = 0; i < 6; i++) store.create(plain(`s${i}`), 100 + i);
    store.transition('s1', 'ready', undefined, undefined, 200);
    store.transition('s2', 'failed', 'x', undefined, 200);
    store.transition('s3', 'ready', undefined, undefined, 200);
    assert.equal(store.list().map((r) => r.id), ['s5', 's4', 's3', 's2', 's1', 's0']);
    assert.equal(store.list({ states: ['ready'] }).map((r) => r.id), ['s3', 's1']);
    assert.equal(store.list({ states: ['ready', 'failed'], limit: 2 }).map((r) => r.id), ['s3', 's2']);
    assert.equal(store.list({ since: 102, until: 104 }).map((r) => r.id), ['s3', 's2']);
    assert.equal(store.list({ states: [] }), []);
    assert.is(store.list({ states: ['ready'] })[0]!.transitions.length, 2);
  } finally {
    store.close();
  }
});

test('prune deletes terminal records ended before the cut with their containers and transitions', () => {
  using tmp = tempDir();
  const store = openSessionStore(tmp.path);
  try {
    store.create(plain('old'), 0);
    store.putContainer('old', { id: 'c', name: 'n', role: 'probe', startedAt: null, finishedAt: null, exitCode: 0, stats: null }, 1);
    store.transition('old', 'completed', undefined, undefined, 50);
    store.create(plain('recent'), 0);
    store.transition('recent', 'completed', undefined, undefined, 150);
    store.create(plain('live'), 0);
    assert.is(store.prune(100), 1);
    assert.equal(store.list().map((r) => r.id).sort(), ['live', 'recent']);
    const orphans = store.db.prepare("SELECT (SELECT COUNT(*) FROM containers WHERE session_id = 'old') + (SELECT COUNT(*) FROM transitions WHERE session_id = 'old') AS n").get() as { n: number };
    assert.is(orphans.n, 0);
    assert.is(store.prune(100), 0);
  } finally {
    store.close();
  }
});

test.run();

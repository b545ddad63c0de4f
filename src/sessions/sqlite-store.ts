/**
 * Durable session records in SQLite (better-sqlite3): one file under EDGEECHO_DATA_DIR, WAL mode so readers
 * (session.list, the sweep) never wait on the writer. Every statement is prepared once; a change that touches
 * several rows (a transition and its session row) is one transaction.
 */
import Database from 'better-sqlite3';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { EdgeechoError, type WireError } from '../../protocol/errors.js';
import type { Role } from '../runtime/driver.js';
import type { SessionSpec } from '../workflow/session-spec.js';
import { newInstanceId, INSTANCE_ID_PATTERN } from './session-id.js';
import { migrate } from './sqlite-migrations.js';
import {
  TERMINAL_STATES,
  type SessionContainer,
  type SessionFilter,
  type SessionPatch,
  type SessionRecord,
  type SessionState,
  type SessionStore,
  type SessionTransition,
} from './types.js';

export const SESSION_DB_FILE = 'sessions.sqlite';
/** A busy writer (another process opening the same file, e.g. `edgeecho session list`) is waited for this long. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

interface SessionRow {
  id: string;
  mode: string;
  count: number;
  payload_bytes: number;
  rate: number | null;
  state: string;
  created_at: number;
  updated_at: number;
  ended_at: number | null;
  network: string | null;
  location: string | null;
  probe: string | null;
  error: string | null;
}

interface ContainerRow {
  session_id: string;
  id: string;
  name: string;
  role: string;
  started_at: string | null;
  finished_at: string | null;
  exit_code: number | null;
  stats: string | null;
}

interface TransitionRow {
  session_id: string;
  state: string;
  at: number;
  reason: string | null;
}

const json = (value: unknown): string | null => (value === null || value === undefined ? null : JSON.stringify(value));
const parse = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

function isTerminal(state: SessionState): boolean {
  return TERMINAL_STATES.includes(state);
}

function prepareStatements(db: Database.Database) {
return {
    insert: db.prepare(
      `INSERT INTO sessions (id, mode, count, payload_bytes, rate, state, created_at, updated_at)
       VALUES (@id, @mode, @count, @payload_bytes, @rate, 'creating', @now, @now)`,
    ),
    get: db.prepare<[string], SessionRow>('SELECT * FROM sessions WHERE id = ?'),
    // One statement for every filter shape: absent parts are NULL and drop out.
    list: db.prepare<{ states: string | null; since: number | null; until: number | null; limit: number }, SessionRow>(
      `SELECT * FROM sessions
       WHERE (@states IS NULL OR state IN (SELECT value FROM json_each(@states)))
         AND (@since IS NULL OR created_at >= @since)
         AND (@until IS NULL OR created_at < @until)
       ORDER BY created_at DESC, id
       LIMIT @limit`,
    ),
    // The page after a cursor: created_at <= the cursor's is an index range (not inside an OR), so a page costs its
    // own rows, not the rows before it.
    listAfter: db.prepare<{ states: string | null; since: number | null; until: number | null; after_at: number; after_id: string; limit: number }, SessionRow>(
      `SELECT * FROM sessions
       WHERE created_at <= @after_at AND (created_at < @after_at OR id > @after_id)
         AND (@states IS NULL OR state IN (SELECT value FROM json_each(@states)))
         AND (@since IS NULL OR created_at >= @since)
         AND (@until IS NULL OR created_at < @until)
       ORDER BY created_at DESC, id
       LIMIT @limit`,
    ),
    containersOf: db.prepare<[string], ContainerRow>('SELECT * FROM containers WHERE session_id IN (SELECT value FROM json_each(?)) ORDER BY seq'),
    transitionsOf: db.prepare<[string], TransitionRow>(
      'SELECT session_id, state, at, reason FROM transitions WHERE session_id IN (SELECT value FROM json_each(?)) ORDER BY seq',
    ),
    addTransition: db.prepare('INSERT INTO transitions (session_id, state, at, reason) VALUES (?, ?, ?, ?)'),
    setState: db.prepare('UPDATE sessions SET state = ?, updated_at = ?, ended_at = ? WHERE id = ?'),
    patch: db.prepare(
      `UPDATE sessions SET
         network  = CASE WHEN @has_network  THEN @network  ELSE network  END,
         location = CASE WHEN @has_location THEN @location ELSE location END,
         probe    = CASE WHEN @has_probe    THEN @probe    ELSE probe    END,
         error    = CASE WHEN @has_error    THEN @error    ELSE error    END,
         updated_at = @now
       WHERE id = @id`,
    ),
    putContainer: db.prepare(
      `INSERT INTO containers (session_id, id, name, role, started_at, finished_at, exit_code, stats, seq)
       VALUES (@session_id, @id, @name, @role, @started_at, @finished_at, @exit_code, @stats,
               (SELECT COUNT(*) FROM containers WHERE session_id = @session_id))
       ON CONFLICT (session_id, id) DO UPDATE SET
         name = excluded.name, role = excluded.role, started_at = excluded.started_at,
         finished_at = excluded.finished_at, exit_code = excluded.exit_code, stats = excluded.stats`,
    ),
    touch: db.prepare('UPDATE sessions SET updated_at = ? WHERE id = ?'),
    prune: db.prepare('DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < ?'),
    metaGet: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    metaInsert: db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)'),
  };
}

export class SqliteSessionStore implements SessionStore {
  readonly db: Database.Database;
  private readonly stmt: ReturnType<typeof prepareStatements>;

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // NORMAL is durable across process crashes in WAL mode; only a power cut may lose the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma(`busy_timeout = ${DEFAULT_BUSY_TIMEOUT_MS}`);
    migrate(this.db);
    this.stmt = prepareStatements(this.db);
  }

  create(session: SessionSpec, now = Date.now()): SessionRecord {
    this.db.transaction(() => {
      try {
        this.stmt.insert.run({ id: session.id, mode: session.mode, count: session.count, payload_bytes: session.payloadBytes, rate: session.rate, now });
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new EdgeechoError('CONFLICT', `session ${session.id} already exists; expected a new session id`, { session: session.id });
        }
        throw err;
      }
      this.stmt.addTransition.run(session.id, 'creating', now, null);
    })();
    return this.mustGet(session.id);
  }

  get(id: string): SessionRecord | undefined {
    const row = this.stmt.get.get(id);
    return row ? this.hydrate([row])[0] : undefined;
  }

  list(filter: SessionFilter = {}): SessionRecord[] {
    const params = {
      states: filter.states ? JSON.stringify(filter.states) : null,
      since: filter.since ?? null,
      until: filter.until ?? null,
      // SQLite reads a negative LIMIT as "no limit".
      limit: filter.limit ?? -1,
    };
    const rows = filter.after ? this.stmt.listAfter.all({ ...params, after_at: filter.after.createdAt, after_id: filter.after.id }) : this.stmt.list.all(params);
    return this.hydrate(rows);
  }

  transition(id: string, state: SessionState, reason?: string, patch?: SessionPatch, now = Date.now()): SessionRecord {
    this.db.transaction(() => {
      const row = this.mustGetRow(id);
      const from = row.state as SessionState;
      // A terminal record is final: the reaper, the sweep and session.stop may race to finish the same session,
      // and only the first may decide how it ended.
      if (isTerminal(from)) {
        throw new EdgeechoError('CONFLICT', `session ${id} is already ${from}; expected a live session to move to ${state}`, { session: id, state: from, asked: state });
      }
      this.stmt.setState.run(state, now, isTerminal(state) ? now : null, id);
      this.stmt.addTransition.run(id, state, now, reason ?? null);
      if (patch) this.applyPatch(id, patch, now);
    })();
    return this.mustGet(id);
  }

  update(id: string, patch: SessionPatch, now = Date.now()): SessionRecord {
    this.db.transaction(() => {
      this.mustGetRow(id);
      this.applyPatch(id, patch, now);
    })();
    return this.mustGet(id);
  }

  putContainer(id: string, container: SessionContainer, now = Date.now()): SessionRecord {
    this.db.transaction(() => {
      this.mustGetRow(id);
      this.stmt.putContainer.run({
        session_id: id,
        id: container.id,
        name: container.name,
        role: container.role,
        started_at: container.startedAt,
        finished_at: container.finishedAt,
        exit_code: container.exitCode,
        stats: json(container.stats),
      });
      this.stmt.touch.run(now, id);
    })();
    return this.mustGet(id);
  }

  /**
   * This data dir's instance id, made at the first start and kept with the records: the sessions it records and
   * the objects labelled with it belong together (copying the data dir copies the claim).
   */
  instanceId(): string {
    // INSERT OR IGNORE: of two processes racing on a fresh file, both read the one id that was written.
    this.stmt.metaInsert.run(INSTANCE_KEY, newInstanceId());
    return checkedInstanceId(this.stmt.metaGet.get(INSTANCE_KEY)?.value, this.db.name);
  }

  prune(before: number): number {
    // Containers and transitions go with their session (ON DELETE CASCADE).
    return this.stmt.prune.run(before).changes;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private applyPatch(id: string, patch: SessionPatch, now: number): void {
    this.stmt.patch.run({
      id,
      now,
      has_network: 'network' in patch ? 1 : 0,
      network: json(patch.network),
      has_location: 'location' in patch ? 1 : 0,
      location: json(patch.location),
      has_probe: 'probe' in patch ? 1 : 0,
      probe: json(patch.probe),
      has_error: 'error' in patch ? 1 : 0,
      error: json(patch.error),
    });
  }

  private mustGetRow(id: string): SessionRow {
    const row = this.stmt.get.get(id);
    if (!row) throw new EdgeechoError('NOT_FOUND', `no session ${id}`, { session: id });
    return row;
  }

  private mustGet(id: string): SessionRecord {
    return this.hydrate([this.mustGetRow(id)])[0]!;
  }

  private hydrate(rows: SessionRow[]): SessionRecord[] {
    if (rows.length === 0) return [];
    const ids = JSON.stringify(rows.map((r) => r.id));
    const containers = new Map<string, SessionContainer[]>();
    for (const c of this.stmt.containersOf.all(ids)) {
      const list = containers.get(c.session_id) ?? [];
      list.push({
        id: c.id,
        name: c.name,
        role: c.role as Role,
        startedAt: c.started_at,
        finishedAt: c.finished_at,
        exitCode: c.exit_code,
        stats: parse<Record<string, unknown>>(c.stats),
      });
      containers.set(c.session_id, list);
    }
    const transitions = new Map<string, SessionTransition[]>();
    for (const t of this.stmt.transitionsOf.all(ids)) {
      const list = transitions.get(t.session_id) ?? [];
      const entry: SessionTransition = { state: t.state as SessionState, at: t.at };
      if (t.reason !== null) entry.reason = t.reason;
      list.push(entry);
      transitions.set(t.session_id, list);
    }
    return rows.map((r) => ({
      id: r.id,
      mode: r.mode as SessionRecord['mode'],
      count: r.count,
      payloadBytes: r.payload_bytes,
      rate: r.rate,
      state: r.state as SessionState,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      endedAt: r.ended_at,
      network: parse<SessionRecord['network'] & object>(r.network),
      containers: containers.get(r.id) ?? [],
      location: parse<{ host: string; port: number }>(r.location),
      probe: parse<Record<string, unknown>>(r.probe),
      error: parse<WireError>(r.error),
      transitions: transitions.get(r.id) ?? [],
    }));
  }
}

const INSTANCE_KEY = 'instance';

function checkedInstanceId(value: string | undefined, path: string): string {
  if (value === undefined || !INSTANCE_ID_PATTERN.test(value)) {
    throw new EdgeechoError('INTERNAL', `${path}: expected an instance id of 12 base32 characters in table meta, found ${JSON.stringify(value ?? null)}`);
  }
  return value;
}

/**
 * The instance id of the records at `path` without creating or migrating anything (`edgeecho config`): null when
 * the file or its id does not exist yet (the daemon makes both at its first start).
 */
export function readInstanceId(path: string): string | null {
  if (!existsSync(path)) return null;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    if (!hasMeta) return null;
    const row = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get(INSTANCE_KEY);
    return row ? checkedInstanceId(row.value, path) : null;
  } finally {
    db.close();
  }
}

/** Opens (creating and migrating as needed) the session store at `path`, or an in-memory one for ':memory:'. */
export function openSessionStore(path: string): SqliteSessionStore {
  return new SqliteSessionStore(path);
}

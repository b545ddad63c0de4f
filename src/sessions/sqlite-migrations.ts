/**
 * The session store's schema, as an append-only list of migrations. PRAGMA user_version holds how many have
 * run; a migration is never edited once released, a change is a new entry. Each runs in one transaction with
 * the version bump, so a crash mid-migration leaves the previous version intact.
 */
import type { Database } from 'better-sqlite3';

export interface Migration {
  version: number;
  summary: string;
  up(db: Database): void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    summary: 'sessions, their containers and transitions',
    up(db) {
      db.exec(`
        CREATE TABLE sessions (
          id            TEXT PRIMARY KEY,
          mode          TEXT NOT NULL,
          count         INTEGER NOT NULL,
          payload_bytes INTEGER NOT NULL,
          rate          REAL,
          state         TEXT NOT NULL,
          created_at    INTEGER NOT NULL,
          updated_at    INTEGER NOT NULL,
          ended_at      INTEGER,
          network       TEXT,
          location      TEXT,
          probe         TEXT,
          error         TEXT
        ) STRICT;
        CREATE INDEX sessions_state ON sessions (state);
        CREATE INDEX sessions_created_at ON sessions (created_at);
        CREATE INDEX sessions_ended_at ON sessions (ended_at) WHERE ended_at IS NOT NULL;

        CREATE TABLE containers (
          session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
          id          TEXT NOT NULL,
          name        TEXT NOT NULL,
          role        TEXT NOT NULL,
          started_at  TEXT,
          finished_at TEXT,
          exit_code   INTEGER,
          stats       TEXT,
          seq         INTEGER NOT NULL,
          PRIMARY KEY (session_id, id)
        ) STRICT;
        CREATE INDEX containers_id ON containers (id);

        CREATE TABLE transitions (
          seq        INTEGER PRIMARY KEY AUTOINCREMENT,
          session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
          state      TEXT NOT NULL,
          at         INTEGER NOT NULL,
          reason     TEXT
        ) STRICT;
        CREATE INDEX transitions_session ON transitions (session_id, seq);
      `);
    },
  },
  {
    version: 2,
    summary: 'meta: the daemon instance id (made by the store at first start)',
    up(db) {
      db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;`);
    },
  },
  {
    version: 3,
    summary: 'parked sessions of the warm pools',
    up(db) {
      // A row exists from before the first object of a parked session is made until its last is removed or it is
      // claimed (then the same transaction creates the session record), so nothing parked is ever unrecorded.
      db.exec(`
        CREATE TABLE parked (
          id         TEXT PRIMARY KEY,
          mode       TEXT NOT NULL,
          state      TEXT NOT NULL,
          created_at INTEGER NOT NULL,
          network    TEXT,
          containers TEXT NOT NULL DEFAULT '[]',
          location   TEXT
        ) STRICT;
      `);
    },
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Brings the file up to SCHEMA_VERSION; refuses a file written by a newer edgeecho. Returns versions applied. */
export function migrate(db: Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  const current = db.pragma('user_version', { simple: true }) as number;
  const latest = migrations.length ? migrations[migrations.length - 1]!.version : 0;
  if (current > latest) {
    throw new Error(`session store schema version ${current} is newer than this edgeecho supports (${latest}); upgrade edgeecho or use another EDGEECHO_DATA_DIR`);
  }
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= current) continue;
    db.transaction(() => {
      m.up(db);
      // user_version cannot be bound as a parameter; the value is an integer from this table.
      db.pragma(`user_version = ${Math.trunc(m.version)}`);
    })();
    applied.push(m.version);
  }
  return applied;
}

/**
 * The warm pools' records: one row per parked session (table `parked`, migration 2), in the session store's
 * SQLite file so a claim turns a parked row into a session record in one transaction. Rows are written only by
 * the session lifecycle (parking.ts); the pool, the sweep and reconcile read them.
 */
import type Database from 'better-sqlite3';
import type { ContainerRef, NetworkRef } from '../runtime/driver.js';
import type { ParkedContainer } from '../workflow/parking-workflows.js';
import type { SessionMode } from '../workflow/session-spec.js';

/** `parking`: its objects are being made (a row found so at start is cleaned); `parked`: ready to be claimed. */
export type ParkedState = 'parking' | 'parked';

export interface ParkedEntry {
  /** The id its objects are named and labelled for, and the session id it becomes when claimed. */
  id: string;
  mode: SessionMode;
  state: ParkedState;
  createdAt: number;
  network: NetworkRef | null;
  containers: ParkedContainer[];
  /** The stream server's published port, read when it started. */
  location: { host: string; port: number } | null;
}

export interface ParkedStore {
  add(id: string, mode: SessionMode, now?: number): ParkedEntry;
  get(id: string): ParkedEntry | undefined;
  list(): ParkedEntry[];
  setNetwork(id: string, network: NetworkRef): void;
  addContainer(id: string, container: ContainerRef): void;
  /** Parked: its stream's published location, and its containers as they parked (with their addresses). */
  markParked(id: string, location: { host: string; port: number }, containers: ParkedContainer[]): ParkedEntry;
  remove(id: string): void;
  /** Runs `convert` (which creates the session record) and removes the row, in one transaction. */
  claim(id: string, convert: () => void): void;
}

interface ParkedRow {
  id: string;
  mode: string;
  state: string;
  created_at: number;
  network: string | null;
  containers: string;
  location: string | null;
}

function entryOf(row: ParkedRow): ParkedEntry {
  return {
    id: row.id,
    mode: row.mode as SessionMode,
    state: row.state as ParkedState,
    createdAt: row.created_at,
    network: row.network === null ? null : (JSON.parse(row.network) as NetworkRef),
    containers: JSON.parse(row.containers) as ParkedContainer[],
    location: row.location === null ? null : (JSON.parse(row.location) as { host: string; port: number }),
  };
}

export class SqliteParkedStore implements ParkedStore {
  private readonly stmt;

  /** On the session store's open database (its migrations made the table). */
  constructor(private readonly db: Database.Database) {
    this.stmt = {
      insert: db.prepare(`INSERT INTO parked (id, mode, state, created_at) VALUES (?, ?, 'parking', ?)`),
      get: db.prepare<[string], ParkedRow>('SELECT * FROM parked WHERE id = ?'),
      list: db.prepare<[], ParkedRow>('SELECT * FROM parked ORDER BY created_at, id'),
      network: db.prepare('UPDATE parked SET network = ? WHERE id = ?'),
      containers: db.prepare('UPDATE parked SET containers = ? WHERE id = ?'),
      parked: db.prepare(`UPDATE parked SET state = 'parked', location = ?, containers = ? WHERE id = ?`),
      remove: db.prepare('DELETE FROM parked WHERE id = ?'),
    };
  }

  add(id: string, mode: SessionMode, now = Date.now()): ParkedEntry {
    this.stmt.insert.run(id, mode, now);
    return this.get(id)!;
  }

  get(id: string): ParkedEntry | undefined {
    const row = this.stmt.get.get(id);
    return row ? entryOf(row) : undefined;
  }

  list(): ParkedEntry[] {
    return this.stmt.list.all().map(entryOf);
  }

  setNetwork(id: string, network: NetworkRef): void {
    this.stmt.network.run(JSON.stringify(network), id);
  }

  addContainer(id: string, container: ContainerRef): void {
    this.db.transaction(() => {
      const entry = this.get(id);
      if (!entry) return;
      this.stmt.containers.run(JSON.stringify([...entry.containers.filter((c) => c.id !== container.id), container]), id);
    })();
  }

  markParked(id: string, location: { host: string; port: number }, containers: ParkedContainer[]): ParkedEntry {
    this.stmt.parked.run(JSON.stringify(location), JSON.stringify(containers), id);
    return this.get(id)!;
  }

  remove(id: string): void {
    this.stmt.remove.run(id);
  }

  claim(id: string, convert: () => void): void {
    this.db.transaction(() => {
      convert();
      this.stmt.remove.run(id);
    })();
  }
}

/** What the reaper, the sweep and reconcile know of parked objects: not orphans, not sessions; handed to the pool. */
export interface ParkedView {
  /** True while a parked row exists for this id (parking, parked, or a discard to retry). */
  has(id: string): boolean;
  ids(): string[];
  /** A container of this parked session exited or vanished. */
  exited(id: string, why: string): void;
}

/**
 * What a session is, as stored and as answered by session.get/list. The SQLite store implements
 * SessionStore; only the session lifecycle changes a record's state, the reaper, sweep and reconcile read it.
 */
import type { WireError } from '../../protocol/errors.js';
import type { Role } from '../runtime/driver.js';
import type { SessionMode, SessionSpec } from '../workflow/session-spec.js';

/** creating -> ready -> (stopping) -> completed | failed | stopped; creating -> failed when rolled back. */
export type SessionState = 'creating' | 'ready' | 'stopping' | 'completed' | 'failed' | 'stopped';

export const LIVE_STATES: readonly SessionState[] = ['creating', 'ready', 'stopping'];
export const TERMINAL_STATES: readonly SessionState[] = ['completed', 'failed', 'stopped'];

export interface SessionContainer {
  id: string;
  name: string;
  role: Role;
  startedAt: string | null;
  finishedAt: string | null;
  exitCode: number | null;
  /** The emulator's final stats line, parsed. */
  stats: Record<string, unknown> | null;
}

export interface SessionTransition {
  state: SessionState;
  /** ms since the epoch */
  at: number;
  reason?: string;
}

export interface SessionRecord {
  id: string;
  mode: SessionMode;
  count: number;
  payloadBytes: number;
  /** frames per second; null: as fast as backpressure allows */
  rate: number | null;
  state: SessionState;
  createdAt: number;
  updatedAt: number;
  endedAt: number | null;
  network: { id: string; name: string; subnet: string } | null;
  containers: SessionContainer[];
  location: { host: string; port: number } | null;
  probe: Record<string, unknown> | null;
  error: WireError | null;
  transitions: SessionTransition[];
}

export interface SessionFilter {
  states?: readonly SessionState[];
  /** createdAt >= since (ms) */
  since?: number;
  /** createdAt < until (ms) */
  until?: number;
  /** Keyset cursor: only records after this one in list order (created_at descending, then id). */
  after?: { createdAt: number; id: string };
  limit?: number;
}

export type SessionPatch = Partial<Pick<SessionRecord, 'network' | 'location' | 'probe' | 'error'>>;

export interface SessionStore {
  create(session: SessionSpec, now?: number): SessionRecord;
  get(id: string): SessionRecord | undefined;
  list(filter?: SessionFilter): SessionRecord[];
  /** Records the transition with its time; a terminal state also sets endedAt. Throws NOT_FOUND. */
  transition(id: string, state: SessionState, reason?: string, patch?: SessionPatch, now?: number): SessionRecord;
  update(id: string, patch: SessionPatch, now?: number): SessionRecord;
  /** Inserts or updates one container of the session (matched by id). */
  putContainer(id: string, container: SessionContainer, now?: number): SessionRecord;
  /** Deletes terminal records whose endedAt is older than `before` (ms); returns how many. */
  prune(before: number): number;
  close(): void;
}

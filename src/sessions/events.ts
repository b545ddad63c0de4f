/**
 * The in-memory session update bus: the create workflow, session.stop, teardown and the reaper publish here;
 * session.watch (and anything else interested) subscribes per session or to all. Synchronous and in-process:
 * the store is the durable record, this only saves watchers from polling it.
 */
import type { SessionRecord, SessionState } from './types.js';

export interface SessionUpdate {
  id: string;
  state: SessionState;
  /** The record after a state change; absent on progress updates. */
  record?: SessionRecord;
  /** Progress inside a state (e.g. a workflow step's status frame). */
  status?: Record<string, unknown>;
}

export type SessionListener = (update: SessionUpdate) => void;

const ALL = '*';

export class SessionBus {
  private readonly listeners = new Map<string, Set<SessionListener>>();

  /** Subscribes to one session's updates, or every session's with `null`; returns the unsubscribe function. */
  subscribe(id: string | null, listener: SessionListener): () => void {
    const key = id ?? ALL;
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0 && this.listeners.get(key) === set) this.listeners.delete(key);
    };
  }

  publish(update: SessionUpdate): void {
    for (const key of [update.id, ALL]) {
      const set = this.listeners.get(key);
      if (!set) continue;
      for (const listener of [...set]) {
        try {
          listener(update);
        } catch {
          // one broken watcher must not stop the others or the publisher
        }
      }
    }
  }

  /** Sessions with at least one watcher (for tests and diagnostics). */
  get watched(): number {
    return [...this.listeners.keys()].filter((k) => k !== ALL).length;
  }
}

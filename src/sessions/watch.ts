/** Following one session until it ends: its updates as they happen, then its final record. */
import { EdgeechoError } from '../../protocol/errors.js';
import type { SessionBus, SessionUpdate } from './events.js';
import { TERMINAL_STATES, type SessionRecord } from './types.js';

export interface WatchOptions {
  signal: AbortSignal;
  /** Every update after the watch began; the first call reports the state found when it began. */
  onUpdate(update: SessionUpdate): void;
}

/** Resolves with the terminal record; rejects as `get` does for an unknown session, and CANCELLED when the signal aborts. */
export function watchSession(deps: { get(id: string): SessionRecord; bus: Pick<SessionBus, 'subscribe'> }, id: string, options: WatchOptions): Promise<SessionRecord> {
  return new Promise((resolve, reject) => {
    let unsubscribe = (): void => {};
    const onAbort = (): void => {
      unsubscribe();
      reject(new EdgeechoError('CANCELLED', `watching session ${id} was cancelled`));
    };
    const end = (record: SessionRecord): void => {
      unsubscribe();
      options.signal.removeEventListener('abort', onAbort);
      resolve(record);
    };
    // Subscribe before reading the record, so a change between the two is not lost.
    unsubscribe = deps.bus.subscribe(id, (update) => {
      options.onUpdate(update);
      if (TERMINAL_STATES.includes(update.state) && update.record) end(update.record);
    });
    let record: SessionRecord;
    try {
      record = deps.get(id);
    } catch (err) {
      unsubscribe();
      reject(err);
      return;
    }
    if (TERMINAL_STATES.includes(record.state)) return end(record);
    if (options.signal.aborted) return onAbort();
    options.signal.addEventListener('abort', onAbort, { once: true });
    options.onUpdate({ id, state: record.state });
  });
}

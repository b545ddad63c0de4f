/**
 * How a session ends, in one vocabulary: detectors (the reaper, the sweep, reconcile) and session.stop report a
 * FinishRequest saying what they saw; the lifecycle alone turns it into an Outcome (completed, failed or stopped,
 * with a reason and, when failed, an error) and acts on it.
 */
import type { WireError } from '../../protocol/errors.js';
import type { SessionContainer, SessionState } from './types.js';

export const VANISHED = 'containers vanished from the runtime';
export const RESTARTED_DURING_CREATE = 'daemon restarted during create';
export const STOPPED_WHILE_CREATING = 'stopped while creating';

export type TerminalState = 'completed' | 'failed' | 'stopped';

export interface Outcome {
  state: TerminalState;
  reason?: string;
  error?: WireError;
}

export type FinishRequest =
  /** Every container ended by itself: completed or failed, judged by exit codes and the emulators' stats. */
  | { cause: 'exited' }
  /** Asked to stop (session.stop, shutdown, a stop cut off by a restart). */
  | { cause: 'stop'; reason: string }
  /** Still live past EDGEECHO_SESSION_TTL_S. */
  | { cause: 'expired'; ttlS: number; state: SessionState }
  /** Its containers are gone from the runtime. */
  | { cause: 'vanished'; expected: string[] }
  /** The daemon died during its create; what was made is rolled back. */
  | { cause: 'interrupted' };

/** What a detector hands a finished session to: the lifecycle (or a test's recorder). */
export interface Finisher {
  finish(id: string, request: FinishRequest): Promise<unknown>;
  /** True while a finish of this session runs: its objects are going away, so they are neither orphans nor re-checked. */
  finishing(id: string): boolean;
}

/** The outcome a request decides by itself; null for `exited`, which is judged from the containers once collected. */
export function outcomeOf(request: FinishRequest): Outcome | null {
  switch (request.cause) {
    case 'exited':
      return null;
    case 'stop':
      return { state: 'stopped', reason: request.reason };
    case 'expired': {
      const reason = `session still ${request.state} after its TTL of ${request.ttlS} s (EDGEECHO_SESSION_TTL_S)`;
      return { state: 'failed', reason, error: { code: 'TIMEOUT', message: reason, details: { ttl_s: request.ttlS, state: request.state } } };
    }
    case 'vanished':
      return {
        state: 'failed',
        reason: VANISHED,
        error: { code: 'RUNTIME_UNAVAILABLE', message: `${VANISHED}; expected ${request.expected.join(', ') || 'none recorded'}, found none`, details: { expected: request.expected } },
      };
    case 'interrupted':
      return { state: 'failed', reason: RESTARTED_DURING_CREATE, error: { code: 'INTERNAL', message: `${RESTARTED_DURING_CREATE}; its containers were removed` } };
  }
}

/**
 * Completed when every container exited 0 and no stats line reports an error or loss; otherwise failed, naming the
 * first culprit. `endings`: why the runtime ended containers that did not end by themselves (by id), e.g. their
 * node went down; such a container fails the session with that reason.
 */
export function judge(containers: readonly SessionContainer[], endings: ReadonlyMap<string, string> = new Map()): Outcome {
  for (const c of containers) {
    const ended = endings.get(c.id);
    if (ended) {
      const message = `${c.role} (${c.name}) ${ended}`;
      return { state: 'failed', reason: `${c.role} ${ended}`, error: { code: 'RUNTIME_UNAVAILABLE', message, details: { role: c.role, runtime: ended } } };
    }
    const stats = c.stats;
    if (c.exitCode !== 0) {
      const why = typeof stats?.error === 'string' ? `: ${stats.error}` : '';
      return {
        state: 'failed',
        reason: `${c.role} exited with code ${c.exitCode}${why}`,
        error: { code: 'INTERNAL', message: `${c.role} (${c.name}) exited with code ${c.exitCode}${why}`, details: { role: c.role, exit_code: c.exitCode } },
      };
    }
    if (stats && (typeof stats.error === 'string' || (typeof stats.lost === 'number' && stats.lost > 0))) {
      const message = `${c.role} reports ${typeof stats.error === 'string' ? stats.error : `${stats.lost} lost frames`}`;
      return { state: 'failed', reason: message, error: { code: 'INTERNAL', message, details: { role: c.role, stats } } };
    }
  }
  return { state: 'completed' };
}

/**
 * Session ops: argument schemas, then one call into the session lifecycle (create, stop, watch) or the store
 * (get, list), answered in wire form. The lifecycle owns everything about a session's life.
 */
import type { Config } from '../config.js';
import type { SessionUsage } from '../resources/tracker.js';
import type { SessionLifecycle } from '../sessions/lifecycle.js';
import { SESSION_ID_PATTERN } from '../sessions/session-id.js';
import { TERMINAL_STATES, type SessionState, type SessionStore } from '../sessions/types.js';
import type { SessionMode } from '../workflow/session-spec.js';
import type { OpDefinition } from './contract.js';
import { sessionUsageWire } from './resource-ops.js';
import { sessionView } from './session-view.js';

export const DEFAULT_LIST_LIMIT = 100;
/**
 * The largest page: what one session.list may cost (rows read, views encoded, bytes queued for the client) is
 * bounded by this, so a flood of lists cannot make the daemon serialize its whole history per request.
 */
export const MAX_LIST_LIMIT = 500;
/** `next`/`before`: the last view's created_at and id, the keyset position of the list order. */
const CURSOR_PATTERN = /^(\d{1,15})-([a-z2-7]{10})$/;

export interface SessionOpsDeps {
  lifecycle: Pick<SessionLifecycle, 'create' | 'stop' | 'watch' | 'get'>;
  store: Pick<SessionStore, 'list'>;
  config: Pick<Config, 'maxCount' | 'maxPayloadBytes'>;
  /** The session's latest sampled CPU and memory (the resource tracker), shown by session.get. */
  usage?: (session: string) => SessionUsage | undefined;
}

interface CreateArgs {
  mode: SessionMode;
  count: number;
  payload_bytes?: number;
  rate?: number;
}

export function sessionOps(deps: SessionOpsDeps): OpDefinition<any>[] {
  const { lifecycle, config } = deps;
  const sessionId = { type: 'string', required: true, pattern: SESSION_ID_PATTERN } as const;

  const create: OpDefinition<CreateArgs> = {
    name: 'session.create',
    summary: 'create a plain or segmented stream session; status frames per step; result: id, location, containers, probe details',
    detached: true,
    args: {
      mode: { type: 'enum', values: ['plain', 'segmented'], required: true },
      count: { type: 'int', min: 1, max: config.maxCount, required: true },
      payload_bytes: { type: 'int', min: 1, max: config.maxPayloadBytes },
      rate: { type: 'int', min: 0, max: 100_000_000 },
    },
    async handler(args, ctx) {
      const { id, location, network, containers, probe } = await lifecycle.create(
        { mode: args.mode, count: args.count, ...(args.payload_bytes !== undefined ? { payloadBytes: args.payload_bytes } : {}), ...(args.rate !== undefined ? { rate: args.rate } : {}) },
        { signal: ctx.signal, log: ctx.log, status: (fields) => ctx.status(fields) },
      );
      return { id, location, network, containers, probe };
    },
  };

  const get: OpDefinition<{ id: string }> = {
    name: 'session.get',
    summary: 'one session record',
    args: { id: sessionId },
    handler: async (args) => {
      const record = lifecycle.get(args.id);
      const view = sessionView(record);
      // A finished session uses nothing: figures from a sample taken while it ran would read as current.
      const usage = TERMINAL_STATES.includes(record.state) ? undefined : deps.usage?.(args.id);
      return usage ? { ...view, usage: sessionUsageWire(usage) } : view;
    },
  };

  const list: OpDefinition<{ state?: SessionState; limit?: number; before?: string }> = {
    name: 'session.list',
    summary: `session records, newest first, optionally of one state; pages of at most ${MAX_LIST_LIMIT}, the next one from \`before: next\``,
    args: {
      state: { type: 'enum', values: ['creating', 'ready', 'stopping', 'completed', 'failed', 'stopped'] },
      limit: { type: 'int', min: 1, max: MAX_LIST_LIMIT },
      before: { type: 'string', pattern: CURSOR_PATTERN },
    },
    handler: async (args) => {
      const limit = args.limit ?? DEFAULT_LIST_LIMIT;
      const cursor = args.before === undefined ? undefined : CURSOR_PATTERN.exec(args.before)!;
      // one row past the page tells whether there is a next page without a COUNT
      const records = deps.store.list({
        ...(args.state ? { states: [args.state] } : {}),
        ...(cursor ? { after: { createdAt: Number(cursor[1]), id: cursor[2]! } } : {}),
        limit: limit + 1,
      });
      const page = records.slice(0, limit);
      const last = page.at(-1);
      return { sessions: page.map(sessionView), next: records.length > limit && last ? `${last.createdAt}-${last.id}` : null };
    },
  };

  const stop: OpDefinition<{ id: string }> = {
    name: 'session.stop',
    summary: 'stop a session gracefully and remove its containers and network; result: the final record',
    detached: true,
    args: { id: sessionId },
    handler: async (args, ctx) => sessionView(await lifecycle.stop(args.id, { status: (fields) => ctx.status(fields) })),
  };

  const watch: OpDefinition<{ id: string }> = {
    name: 'session.watch',
    summary: 'status frames as a session changes, until completed, failed or stopped; result: the final record with the emulators\' stats',
    args: { id: sessionId },
    handler: async (args, ctx) => {
      const final = await lifecycle.watch(args.id, {
        signal: ctx.signal,
        onUpdate: (update) => {
          if (update.status) return ctx.status({ session: args.id, session_state: update.state, ...update.status });
          const frame: Record<string, unknown> = { session: args.id, step: 'session', state: update.state, session_state: update.state };
          if (update.record && TERMINAL_STATES.includes(update.state)) {
            frame.containers = update.record.containers.map((c) => ({ role: c.role, exit_code: c.exitCode, stats: c.stats }));
          }
          ctx.status(frame);
        },
      });
      return sessionView(final);
    },
  };

  return [create, get, list, stop, watch];
}

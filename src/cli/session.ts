/**
 * `edgeecho session create | ls | get | stop | watch`. On a terminal, session create shows the workflow's
 * steps live (live-view.ts); with --json or when stdout is not a terminal every frame is one JSON line, so
 * scripts read exactly what the daemon sent. Failures exit 1 with "error CODE: message" on stderr.
 */
import { connect, type Client, type StatusFrame } from '../client/index.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { CONNECTION_FLAGS, connectionOptions, formatFlags, parseFlags, UsageError, type CliIo, type CommandModule, type FlagSpec } from './args.js';
import { frameLine } from './frame-json.js';
import {
  applyStatus,
  DEFAULT_SPINNER_INTERVAL_MS,
  formatDuration,
  initialState,
  paletteFor,
  redraw,
  renderError,
  renderResult,
  renderSteps,
  type LiveState,
  type Palette,
  type SessionResultView,
} from './live-view.js';

export const CLI_CLIENT_NAME = 'edgeecho-cli';
/** Exit code after Ctrl-C, as shells report a SIGINT death. */
export const EXIT_INTERRUPTED = 130;

const JSON_FLAG = { json: { type: 'bool', help: 'one JSON line per frame (the default when stdout is not a terminal)' } } satisfies Record<string, FlagSpec>;

interface Output {
  json: boolean;
  live: boolean;
  palette: Palette;
}

function outputMode(io: CliIo, json: boolean | undefined): Output {
  const isTTY = (io.stdout as { isTTY?: boolean }).isTTY === true;
  const asJson = json ?? !isTTY;
  return { json: asJson, live: isTTY && !asJson, palette: paletteFor(isTTY, io.env) };
}

async function openClient(values: Parameters<typeof connectionOptions>[0], io: CliIo): Promise<Client> {
  return connect({ ...connectionOptions(values, io.env), client: CLI_CLIENT_NAME });
}

/** Runs `body` with a client and a signal aborted by Ctrl-C; errors become exit 1 (or 130) with the code on stderr. */
async function withClient(
  values: Parameters<typeof connectionOptions>[0],
  io: CliIo,
  out: Output,
  body: (client: Client, signal: AbortSignal) => Promise<number>,
): Promise<number> {
  const abort = new AbortController();
  const onSigint = (): void => abort.abort(new EdgeechoError('CANCELLED', 'interrupted (Ctrl-C); the daemon was asked to cancel'));
  process.on('SIGINT', onSigint);
  let client: Client | null = null;
  try {
    client = await openClient(values, io);
    return await body(client, abort.signal);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const error = EdgeechoError.from(err);
    // follow() already printed the request's error frame; a failed connect has none yet.
    if (out.json && !(err as { shown?: boolean }).shown) io.stdout.write(frameLine({ id: null, kind: 'error', error: error.toWire() }) + '\n');
    io.stderr.write(renderError(error) + '\n');
    return abort.signal.aborted ? EXIT_INTERRUPTED : 1;
  } finally {
    process.off('SIGINT', onSigint);
    await client?.close();
  }
}

/**
 * Sends one request and shows its frames: live steps on a terminal, JSON lines otherwise. Resolves with the
 * result data, or throws its error after the view shows where it failed.
 */
export async function follow<T>(
  client: Client,
  op: string,
  args: Record<string, unknown>,
  io: CliIo,
  out: Output,
  signal: AbortSignal,
  timers: { setInterval: typeof setInterval; clearInterval: typeof clearInterval; now: () => number } = { setInterval, clearInterval, now: Date.now },
): Promise<T> {
  let state: LiveState = initialState();
  let drawn = 0;
  let tick = 0;
  const draw = (): void => {
    const lines = renderSteps(state, timers.now(), tick, out.palette);
    io.stdout.write(redraw(drawn, lines));
    drawn = lines.length;
  };
  const onStatus = (frame: StatusFrame): void => {
    if (out.json) {
      io.stdout.write(frameLine(frame) + '\n');
      return;
    }
    state = applyStatus(state, frame, timers.now());
    if (out.live) draw();
    else io.stdout.write(describeStatus(frame) + '\n');
  };
  let spinner: ReturnType<typeof setInterval> | null = null;
  if (out.live) {
    io.stdout.write('\x1b[?25l');
    spinner = timers.setInterval(() => {
      tick++;
      if (state.steps.some((s) => s.state === 'running')) draw();
    }, DEFAULT_SPINNER_INTERVAL_MS);
  }
  const call = client.call<T>(op, args, { signal, onStatus });
  try {
    const data = await call.result;
    if (out.json) io.stdout.write(frameLine({ id: call.id, kind: 'result', data }) + '\n');
    return data;
  } catch (err) {
    const error = EdgeechoError.from(err);
    // Steps still spinning when the request failed did not finish: show them crossed, not frozen mid-turn.
    for (const s of state.steps) if (s.state === 'running') state = applyStatus(state, { step: s.step, state: 'failed' }, timers.now());
    if (out.json) io.stdout.write(frameLine({ id: call.id, kind: 'error', error: error.toWire() }) + '\n');
    throw Object.assign(error, { shown: true });
  } finally {
    if (spinner !== null) timers.clearInterval(spinner);
    if (out.live) {
      draw();
      io.stdout.write('\x1b[?25h');
    }
  }
}

/** A status frame as one readable line, for terminals without the live view (session watch, stop). */
export function describeStatus(frame: Record<string, unknown>): string {
  const { id: _id, kind: _kind, step, state, elapsed_ms, details, ...rest } = frame;
  const parts: string[] = [];
  if (typeof step === 'string') parts.push(step);
  if (state !== undefined) parts.push(String(state));
  if (typeof elapsed_ms === 'number' && state !== 'started') parts.push(formatDuration(elapsed_ms));
  if (details !== undefined && details !== null) parts.push(JSON.stringify(details));
  if (Object.keys(rest).length) parts.push(JSON.stringify(rest));
  return parts.join('  ');
}

function commandUsage(line: string, text: string, flags: Record<string, FlagSpec>): string {
  return `usage: ${line}\n\n${text}\n\n${formatFlags(flags)}\n`;
}

const CREATE_FLAGS = {
  plain: { type: 'bool', help: 'probe -> stream server; clients read the stream from the location (default)' },
  segmented: { type: 'bool', help: 'probe -> stream server -> segmentation server' },
  count: { type: 'int', placeholder: 'N', min: 1, help: 'frames the probe sends (required)' },
  'payload-bytes': { type: 'bytes', placeholder: 'B', help: 'payload size of each frame (default 64)' },
  rate: { type: 'int', placeholder: 'R', min: 0, help: 'frames per second, 0: as fast as the consumer reads (default 0)' },
  ...JSON_FLAG,
  ...CONNECTION_FLAGS,
} satisfies Record<string, FlagSpec>;

export const create: CommandModule = {
  usage: commandUsage(
    'edgeecho session create [--plain|--segmented] --count N [--payload-bytes B] [--rate R] [--json]',
    'Creates a stream session and follows its workflow: on a terminal one line per step, a spinner turning\ninto a tick or a cross with its duration, then the location to read the stream from. With --json or in a\npipe, one JSON line per frame (status frames, then the result or error frame). Exit 1 on failure with\n"error CODE: message" on stderr; Ctrl-C cancels the workflow (the daemon rolls back) and exits 130.',
    CREATE_FLAGS,
  ),
  async run(argv, io) {
    const { values, positionals } = parseFlags(argv, CREATE_FLAGS);
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (values.plain && values.segmented) throw new UsageError('--plain and --segmented exclude each other; give one');
    if (values.count === undefined) throw new UsageError('--count N is required (frames the probe sends)');
    const args: Record<string, unknown> = { mode: values.segmented ? 'segmented' : 'plain', count: values.count };
    if (values['payload-bytes'] !== undefined) args.payload_bytes = values['payload-bytes'];
    if (values.rate !== undefined) args.rate = values.rate;
    const out = outputMode(io, values.json);
    return withClient(values, io, out, async (client, signal) => {
      const result = await follow<SessionResultView>(client, 'session.create', args, io, out, signal);
      if (!out.json) io.stdout.write(renderResult(result, out.palette).join('\n') + '\n');
      return 0;
    });
  },
};

const LS_FLAGS = {
  state: { type: 'string', placeholder: 'STATE', help: 'only sessions in this state (creating, ready, stopping, completed, failed, stopped)' },
  limit: { type: 'int', placeholder: 'N', min: 1, help: 'at most N sessions, newest first (one page: up to 500)' },
  before: { type: 'string', placeholder: 'CURSOR', help: 'the page after this cursor (printed as "next:" under a full page)' },
  ...JSON_FLAG,
  ...CONNECTION_FLAGS,
} satisfies Record<string, FlagSpec>;

export interface SessionRow {
  id?: unknown;
  mode?: unknown;
  state?: unknown;
  count?: unknown;
  created_at?: unknown;
  location?: { host?: unknown; port?: unknown } | null;
}

/** session.list may answer an array or {sessions: [...]}; both read the same. */
export function sessionsOf(data: unknown): SessionRow[] {
  if (Array.isArray(data)) return data as SessionRow[];
  if (data && typeof data === 'object' && Array.isArray((data as { sessions?: unknown }).sessions)) return (data as { sessions: SessionRow[] }).sessions;
  return [];
}

/** 45 s, 12 m, 3 h, 2 d. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}

/** Columns padded to their widest cell; the header in the first row. */
export function renderTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n') + '\n';
}

export function renderSessionTable(sessions: readonly SessionRow[], now: number): string {
  if (sessions.length === 0) return 'no sessions\n';
  const rows = sessions.map((s) => {
    const created = typeof s.created_at === 'number' ? s.created_at : NaN;
    const loc = s.location && s.location.host !== undefined ? `${String(s.location.host)}:${String(s.location.port)}` : '-';
    return [String(s.id ?? '?'), String(s.mode ?? '-'), String(s.state ?? '-'), String(s.count ?? '-'), formatAge(now - created), loc];
  });
  return renderTable([['ID', 'MODE', 'STATE', 'COUNT', 'AGE', 'LOCATION'], ...rows]);
}

export const ls: CommandModule = {
  usage: commandUsage('edgeecho session ls [--state STATE] [--limit N] [--before CURSOR] [--json]', 'Lists sessions, newest first, as a table (or the result as one JSON line with --json).', LS_FLAGS),
  async run(argv, io) {
    const { values, positionals } = parseFlags(argv, LS_FLAGS);
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const args: Record<string, unknown> = {};
    if (values.state !== undefined) args.state = values.state;
    if (values.limit !== undefined) args.limit = values.limit;
    if (values.before !== undefined) args.before = values.before;
    const out = outputMode(io, values.json);
    return withClient(values, io, out, async (client, signal) => {
      const data = await client.request('session.list', args, { signal });
      const next = (data as { next?: unknown } | null)?.next;
      io.stdout.write(out.json ? frameLine(data) + '\n' : renderSessionTable(sessionsOf(data), Date.now()) + (typeof next === 'string' ? `next: ${next}\n` : ''));
      return 0;
    });
  },
};

/** A session record as aligned key/value lines, containers and transitions below. */
export function renderSession(record: Record<string, unknown>, now: number = Date.now()): string {
  const lines: string[] = [];
  const kv = (k: string, v: unknown): void => {
    if (v !== undefined && v !== null) lines.push(`${k.padEnd(10)}${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  };
  kv('id', record.id);
  kv('mode', record.mode);
  kv('state', record.state);
  kv('count', record.count);
  kv('payload', record.payload_bytes !== undefined ? `${String(record.payload_bytes)} bytes` : undefined);
  kv('rate', record.rate === null ? 'unlimited' : record.rate !== undefined ? `${String(record.rate)}/s` : undefined);
  if (typeof record.created_at === 'number') kv('created', `${new Date(record.created_at).toISOString()} (${formatAge(now - record.created_at)} ago)`);
  if (typeof record.ended_at === 'number') kv('ended', new Date(record.ended_at).toISOString());
  const loc = record.location as { host?: unknown; port?: unknown } | null | undefined;
  if (loc) kv('location', `${String(loc.host)}:${String(loc.port)}`);
  const net = record.network as { name?: unknown; subnet?: unknown } | null | undefined;
  if (net) kv('network', `${String(net.name)} (${String(net.subnet)})`);
  const error = record.error as { code?: unknown; message?: unknown } | null | undefined;
  if (error) kv('error', `${String(error.code)}: ${String(error.message)}`);
  const containers = Array.isArray(record.containers) ? (record.containers as Array<Record<string, unknown>>) : [];
  if (containers.length) {
    lines.push('', 'containers:');
    const rows = containers.map((c) => ['  ' + String(c.role ?? '-'), String(c.name ?? '-'), String(c.id ?? '').slice(0, 12), c.exit_code === null || c.exit_code === undefined ? '-' : `exit ${String(c.exit_code)}`]);
    lines.push(renderTable([['  ROLE', 'NAME', 'ID', 'EXIT'], ...rows]).trimEnd());
  }
  const transitions = Array.isArray(record.transitions) ? (record.transitions as Array<Record<string, unknown>>) : [];
  if (transitions.length) {
    lines.push('', 'transitions:');
    for (const t of transitions) {
      lines.push(`  ${typeof t.at === 'number' ? new Date(t.at).toISOString() : '-'}  ${String(t.state)}${t.reason ? '  ' + String(t.reason) : ''}`);
    }
  }
  return lines.join('\n') + '\n';
}

const ID_FLAGS = { ...JSON_FLAG, ...CONNECTION_FLAGS } satisfies Record<string, FlagSpec>;

function oneId(positionals: string[], command: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected exactly one session ID (edgeecho session ${command} ID), got ${positionals.length}`);
  return positionals[0]!;
}

export const get: CommandModule = {
  usage: commandUsage('edgeecho session get ID [--json]', 'Shows one session: state, location, network, containers and state transitions.', ID_FLAGS),
  async run(argv, io) {
    const { values, positionals } = parseFlags(argv, ID_FLAGS);
    const id = oneId(positionals, 'get');
    const out = outputMode(io, values.json);
    return withClient(values, io, out, async (client, signal) => {
      const data = await client.request<Record<string, unknown>>('session.get', { id }, { signal });
      const record = (data && typeof data === 'object' && 'session' in data ? (data.session as Record<string, unknown>) : data) ?? {};
      io.stdout.write(out.json ? frameLine(data) + '\n' : renderSession(record));
      return 0;
    });
  },
};

export const stop: CommandModule = {
  usage: commandUsage('edgeecho session stop ID [--json]', 'Stops a session: its containers are stopped and removed, the record kept. Shows the steps like create.', ID_FLAGS),
  async run(argv, io) {
    const { values, positionals } = parseFlags(argv, ID_FLAGS);
    const id = oneId(positionals, 'stop');
    const out = outputMode(io, values.json);
    return withClient(values, io, out, async (client, signal) => {
      const data = await follow<Record<string, unknown>>(client, 'session.stop', { id }, io, out, signal);
      if (!out.json) io.stdout.write(`stopped ${id}${data && typeof data === 'object' && data.state ? ` (${String(data.state)})` : ''}\n`);
      return 0;
    });
  },
};

export const watch: CommandModule = {
  usage: commandUsage(
    'edgeecho session watch ID [--json]',
    'Follows a session until it ends: each status frame and event as a line (JSON with --json). Ctrl-C stops watching;\nthe session keeps running.',
    ID_FLAGS,
  ),
  async run(argv, io) {
    const { values, positionals } = parseFlags(argv, ID_FLAGS);
    const id = oneId(positionals, 'watch');
    const out = outputMode(io, values.json);
    return withClient(values, io, out, async (client, signal) => {
      const onEvent = (frame: { topic: string; data: unknown }): void => {
        io.stdout.write(out.json ? frameLine(frame) + '\n' : `${new Date().toISOString().slice(11, 23)}  ${frame.topic}  ${JSON.stringify(frame.data)}\n`);
      };
      client.on('event', onEvent);
      try {
        const lineOut: Output = { ...out, live: false };
        const data = await follow<Record<string, unknown>>(client, 'session.watch', { id }, io, lineOut, signal);
        if (!out.json && data && typeof data === 'object') io.stdout.write(renderSession(data));
        return 0;
      } finally {
        client.off('event', onEvent);
      }
    });
  },
};

/** The dispatcher's entries load these by subcommand. */
export const commands = { create, ls, get, stop, watch } as const;

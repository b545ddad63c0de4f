/**
 * `edgeecho consume ID|HOST:PORT`: reads the stream at a session's location (protocol/DATA.md) with the client
 * library's consume(), writes it to stdout (one JSON line per frame, or with --raw the payload bytes only) and
 * one summary line to stderr. Exit 0 only when the stream was complete and intact.
 */
import type { Writable } from 'node:stream';
import { EdgeechoError } from '../../protocol/errors.js';
import { connect, consume, parseLocation, type StreamConsumer, type StreamLocation } from '../client/index.js';
import { CONNECTION_FLAGS, connectionOptions, formatFlags, parseFlags, UsageError, type CliIo, type FlagSpec } from './args.js';
import { toJsonValue } from './frame-json.js';

const SESSION_ID = /^[a-z2-7]{10}$/;
/** JSON text gathered before one write to stdout: a write per frame would cost more than the read. */
const OUTPUT_BATCH_BYTES = 256 * 1024;

const FLAGS = {
  raw: { type: 'bool', help: 'write only the payload bytes, in seq order (`--raw > capture.bin`)' },
  late: { type: 'bool', help: 'accept joining a stream already running: continuity is checked from the first frame received, the checksum is not' },
  ...CONNECTION_FLAGS,
} satisfies Record<string, FlagSpec>;

export const usage = `usage: edgeecho consume ID|HOST:PORT [--raw] [--late] [daemon connection flags]

Connects to a session's stream and writes what arrives to stdout: one JSON line per frame (details, data
frames {"type":"data","seq":N,"ts":MS,"payload":{"$bin":"<base64>"}}, the end frame), or with --raw only the
payload bytes. ID is looked up with session.get on the daemon (its location); HOST:PORT is read directly.

Checks the sequence (no gap, no reorder), the end frame's count and its CRC-32 over the payloads, then
prints one summary line on stderr:
  consume: 1000 frames, 110100 bytes, lost 0, out of order 0, checksum ok, 12.3 MB/s
Exit 0 when the stream was complete and intact; 1 when frames were missing, out of order or corrupt, the
stream closed before its end frame, or the connection failed; 2 for a usage error.

A plain session starts streaming when its first consumer connects (protocol/DATA.md): start consume right
after session create for every frame. Consumers joining later miss the frames before them (--late).

${formatFlags(FLAGS)}
`;

/** The location of session `id`, asked of the daemon; an error says why a session has none to read. */
async function sessionLocation(id: string, values: Parameters<typeof connectionOptions>[0], io: CliIo): Promise<StreamLocation> {
  const client = await connect({ ...connectionOptions(values, io.env), client: 'edgeecho-consume' });
  try {
    const view = await client.request<{ state: string; location: StreamLocation | null }>('session.get', { id });
    if (!view.location || view.state !== 'ready') {
      throw new EdgeechoError('CONFLICT', `session ${id} is ${view.state}: its stream can be read only while it is ready${view.location ? ` (it was at ${view.location.host}:${view.location.port})` : ''}`);
    }
    return view.location;
  } finally {
    await client.close();
  }
}

/**
 * Buffers JSON lines and applies stdout's backpressure to the reading loop, which awaits `flush` only once a batch
 * is full (an await per frame cost the reading loop a third of its rate).
 */
class Output {
  private text: string[] = [];
  private textBytes = 0;

  constructor(private readonly out: Writable) {}

  get full(): boolean {
    return this.textBytes >= OUTPUT_BATCH_BYTES;
  }

  line(text: string): void {
    this.text.push(text);
    this.textBytes += text.length;
  }

  async flush(): Promise<void> {
    if (!this.text.length) return;
    const chunk = this.text.join('');
    this.text = [];
    this.textBytes = 0;
    await this.write(chunk);
  }

  async write(chunk: Buffer | string): Promise<void> {
    if (!this.out.write(chunk)) await new Promise<void>((resolve) => this.out.once('drain', () => resolve()));
  }
}

export function summaryLine(consumer: StreamConsumer): string {
  const s = consumer.summary;
  const checksum = s.checksum_ok === null ? (s.end ? 'checksum not checked (joined late)' : 'no end frame') : s.checksum_ok ? 'checksum ok' : 'checksum MISMATCH';
  const seconds = s.duration_ms / 1000;
  const mbs = seconds > 0 ? (s.bytes / 1e6 / seconds).toFixed(1) : '-';
  const late = s.first_seq !== null && s.first_seq > 0 ? `, joined at seq ${s.first_seq}` : '';
  return `consume: ${s.frames} frames, ${s.bytes} bytes, lost ${s.lost}, out of order ${s.out_of_order}, ${checksum}${late}, ${mbs} MB/s`;
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length ? `unexpected argument "${positionals[1]}"` : 'expected a session id (10 characters of a-z2-7) or HOST:PORT');
  }
  const target = positionals[0]!;
  const fail = (err: unknown): number => {
    const error = EdgeechoError.from(err);
    io.stderr.write(`edgeecho consume: error ${error.code}: ${error.message}\n`);
    return 1;
  };

  let location: StreamLocation;
  try {
    location = SESSION_ID.test(target) ? await sessionLocation(target, values, io) : parseLocation(target);
  } catch (err) {
    if (err instanceof EdgeechoError && err.code === 'BAD_REQUEST' && !SESSION_ID.test(target)) {
      throw new UsageError(`"${target}" is neither a session id (10 characters of a-z2-7) nor HOST:PORT`);
    }
    return fail(err);
  }

  const abort = new AbortController();
  const onSigint = (): void => abort.abort();
  process.on('SIGINT', onSigint);
  const consumer = consume(location, { allowLateJoin: values.late === true, signal: abort.signal, ...(values['connect-timeout-ms'] ? { connectTimeoutMs: values['connect-timeout-ms'] } : {}) });
  const out = new Output(io.stdout);
  const raw = values.raw === true;
  let detailsShown = false;
  const showDetails = (): void => {
    if (detailsShown || raw || !consumer.summary.details) return;
    detailsShown = true;
    out.line(JSON.stringify(toJsonValue({ type: 'details', ...consumer.summary.details })) + '\n');
  };
  let error: unknown = null;
  try {
    // --raw: the payloads come joined (consumer.payloads()), written as they are, no object per frame
    if (raw) for await (const bytes of consumer.payloads()) await out.write(bytes);
    else {
      for await (const batch of consumer.batches()) {
        showDetails();
        for (const f of batch) out.line(`{"type":"data","seq":${f.seq},"ts":${f.ts},"payload":{"$bin":"${f.payload.toString('base64')}"}}\n`);
        if (out.full) await out.flush();
      }
    }
  } catch (err) {
    error = err;
  } finally {
    process.off('SIGINT', onSigint);
  }
  showDetails();
  const end = consumer.summary.end;
  if (!raw && end) out.line(JSON.stringify({ type: 'end', ...end }) + '\n');
  await out.flush();
  if (consumer.connected) io.stderr.write(summaryLine(consumer) + '\n');
  if (error) return fail(error);
  if (!consumer.summary.complete) {
    io.stderr.write(`edgeecho consume: the stream was joined at seq ${consumer.summary.first_seq}: frames before it are missing (exit 1)\n`);
    return 1;
  }
  return 0;
}

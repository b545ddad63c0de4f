/**
 * `edgeecho cat`: a netcat that speaks frames. JSON requests in on stdin, every frame received out on stdout
 * as one JSON line. Works on raw frames (not the client library) so it shows exactly what the daemon sent,
 * malformed frames included, and can skip hello to probe the gate.
 */
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import { decodeBody, FrameSplitter, FrameWriter } from '../../protocol/codec.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { chooseProtocol, isRequestId, PROTOCOL_VERSION, type RequestId } from '../../protocol/messages.js';
import { createNetSocket, DEFAULT_CLIENT_MAX_FRAME_BYTES, DEFAULT_CONNECT_TIMEOUT_MS, describeTarget, targetOf, type Greeting } from '../client/index.js';
import { CONNECTION_FLAGS, connectionOptions, formatFlags, parseFlags, UsageError, type CliIo, type FlagSpec } from './args.js';
import { frameLine, IdFiller, malformedLine, parseJsonLine, splitChunk } from './frame-json.js';

/** How long cat waits after stdin ends for answers still owed. */
export const DEFAULT_CAT_WAIT_MS = 10_000;

const FLAGS = {
  ...CONNECTION_FLAGS,
  hello: { type: 'bool', help: 'send hello (with the token) after the greeting; --no-hello sends only what stdin holds' },
  hex: { type: 'bool', help: 'print {"frame": ..., "hex": "<the frame\'s bytes>"} per frame' },
  'wait-ms': { type: 'int', placeholder: 'MS', min: 0, help: `after stdin ends, wait this long for outstanding answers, 0: forever (default ${DEFAULT_CAT_WAIT_MS})` },
  client: { type: 'string', placeholder: 'NAME', help: 'client name sent in hello (default edgeecho-cat)' },
} satisfies Record<string, FlagSpec>;

export const usage = `usage: edgeecho cat [--host H --port P | --socket PATH] [--token-file F] [--hex] [--no-hello] [--wait-ms MS]

Connects to the daemon, prints every frame it sends (greeting first) as one JSON line on stdout, and
sends each stdin line as a request: {"op":"ping"}, {"id":7,"op":"session.get","args":{"id":"..."}}.
A request without "id" gets the next free integer. Lines that are not a JSON map are reported on stderr
and skipped. Requests wait until hello has been answered (unless --no-hello).

JSON form: binary is {"$bin": "<base64>"} both ways; integers beyond 2^53 print as decimal strings.
A frame that is not msgpack prints {"kind":"malformed","error":{...},"hex":"..."}.

When stdin ends, cat waits until every request it sent has its result or error (at most --wait-ms),
then exits 0; it exits 1 if the connection failed, closed with answers owed, or the wait ran out.

${formatFlags(FLAGS)}
`;

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"; cat reads requests from stdin`);
  const options = connectionOptions(values, io.env);
  const target = targetOf(options);
  const sendHello = values.hello !== false;
  const waitMs = values['wait-ms'] ?? DEFAULT_CAT_WAIT_MS;
  const fail = (message: string): void => void io.stderr.write(`edgeecho cat: ${message}\n`);

  let socket: Duplex;
  try {
    socket = await (options.createSocket ?? createNetSocket)({ target, signal: AbortSignal.timeout(options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS) });
  } catch (err) {
    const message = err instanceof EdgeechoError ? err.message : `cannot connect to ${describeTarget(target)} within ${options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS} ms (--connect-timeout-ms)`;
    fail(message);
    return 1;
  }

  const splitter = new FrameSplitter(DEFAULT_CLIENT_MAX_FRAME_BYTES);
  const writer = new FrameWriter(socket);
  const ids = new IdFiller();
  /** Answers owed, counted per id: the daemon answers a duplicate in-flight id with its own error. */
  const owed = new Map<RequestId, number>();
  let owedTotal = 0;
  let greeting: Greeting | null = null;
  // Reserved before stdin is read so hello is always request 1, whatever arrives first.
  const helloId: number | null = sendHello ? ids.take() : null;
  let gateOpen = !sendHello;
  const held: Record<string, unknown>[] = [];
  let stdinDone = false;
  let finished = false;
  let waitTimer: NodeJS.Timeout | null = null;
  let resolveExit!: (code: number) => void;
  const exit = new Promise<number>((resolve) => (resolveExit = resolve));

  const sendRequest = (request: Record<string, unknown>): void => {
    if (isRequestId(request.id)) {
      owed.set(request.id, (owed.get(request.id) ?? 0) + 1);
      owedTotal++;
    }
    writer.send(request);
  };

  const settle = (id: unknown): void => {
    const n = owed.get(id as RequestId);
    if (n === undefined) return;
    owedTotal--;
    if (n <= 1) owed.delete(id as RequestId);
    else owed.set(id as RequestId, n - 1);
  };

  const finish = (code: number): void => {
    if (finished) return;
    finished = true;
    if (waitTimer) clearTimeout(waitTimer);
    rl.close();
    writer.flush();
    socket.end();
    // A daemon that never closes its side must not hold cat open.
    const force = setTimeout(() => socket.destroy(), 1_000);
    socket.once('close', () => {
      clearTimeout(force);
      resolveExit(code);
    });
    if (socket.destroyed) resolveExit(code);
  };

  const maybeDone = (): void => {
    if (stdinDone && greeting && gateOpen && held.length === 0 && owedTotal === 0) finish(0);
  };

  const onFrame = (value: unknown): void => {
    if (value === null || typeof value !== 'object') return;
    const frame = value as Record<string, unknown>;
    if (frame.kind === 'hello' && !greeting) {
      greeting = frame as unknown as Greeting;
      if (sendHello) {
        let protocol = chooseProtocol(greeting);
        if (protocol === null) {
          fail(`daemon speaks protocol versions [${String(greeting.protocols)}], cat speaks [${PROTOCOL_VERSION}]; sending hello with ${PROTOCOL_VERSION} anyway`);
          protocol = PROTOCOL_VERSION;
        }
        const args: Record<string, unknown> = { client: values.client ?? 'edgeecho-cat', protocol };
        if (options.token !== undefined) args.token = options.token;
        sendRequest({ id: helloId!, op: 'hello', args });
      }
      return;
    }
    if (frame.kind !== 'result' && frame.kind !== 'error') return;
    settle(frame.id);
    if (frame.id === helloId && !gateOpen) {
      gateOpen = true;
      if (frame.kind === 'error') fail('hello was refused; sending the requests anyway to show the answers');
      for (const request of held.splice(0)) sendRequest(request);
    }
  };

  socket.on('data', (chunk: Buffer) => {
    const { bodies, error } = splitChunk(splitter, chunk);
    for (const body of bodies) {
      const frame = decodeBody(body);
      const line = frame.ok ? frameLine(frame.value, values.hex ? body : undefined) : malformedLine(frame.error, body);
      if (!io.stdout.write(line + '\n')) {
        // A slow reader of stdout slows the socket rather than growing memory.
        socket.pause();
        io.stdout.once('drain', () => socket.resume());
      }
      if (frame.ok) onFrame(frame.value);
    }
    if (error) {
      io.stdout.write(malformedLine(error, undefined, true) + '\n');
      fail(`${error.message}; the connection cannot be framed any more`);
      socket.destroy();
      return;
    }
    maybeDone();
  });
  let socketError: Error | null = null;
  socket.on('error', (err) => (socketError = err));
  socket.on('close', () => {
    if (finished) return;
    const why = socketError ? `connection to ${describeTarget(target)} failed: ${socketError.message}` : `connection closed by the daemon`;
    const owedNow = owedTotal + held.length;
    fail(owedNow ? `${why} with ${owedNow} answers still owed` : why);
    finish(owedNow || !greeting || socketError ? 1 : 0);
  });
  io.stdout.on('error', () => finish(1));

  const rl = createInterface({ input: io.stdin, crlfDelay: Infinity });
  let lineNo = 0;
  rl.on('line', (line) => {
    lineNo++;
    if (finished || !line.trim()) return;
    let value: unknown;
    try {
      value = parseJsonLine(line);
    } catch (err) {
      fail(`line ${lineNo}: expected a JSON request map like {"op":"ping"}, ${(err as Error).message}; skipped`);
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) {
      fail(`line ${lineNo}: expected a JSON request map like {"op":"ping"}, got ${Array.isArray(value) ? 'an array' : typeof value}; skipped`);
      return;
    }
    const request = ids.fill(value as Record<string, unknown>);
    if (gateOpen) sendRequest(request);
    else held.push(request);
  });
  rl.on('close', () => {
    if (finished) return;
    stdinDone = true;
    if (waitMs > 0) {
      waitTimer = setTimeout(() => {
        const ids = [...owed.keys(), ...held.map((r) => r.id)].map((id) => JSON.stringify(id));
        fail(`stdin ended and ${ids.length} requests got no answer within ${waitMs} ms (--wait-ms): ids ${ids.join(', ') || '(none; no greeting)'}`);
        finish(1);
      }, waitMs);
    }
    maybeDone();
  });

  return exit;
}

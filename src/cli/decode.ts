/** `edgeecho decode`: frames on stdin -> JSON lines on stdout. */
import { once } from 'node:events';
import { decodeBody, FrameSplitter } from '../../protocol/codec.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { DEFAULT_CLIENT_MAX_FRAME_BYTES } from '../client/index.js';
import { formatFlags, parseFlags, UsageError, type CliIo, type FlagSpec } from './args.js';
import { frameLine, malformedLine, splitChunk } from './frame-json.js';

const FLAGS = {
  hex: { type: 'bool', help: 'print {"frame": ..., "hex": "<the frame\'s bytes>"} per frame' },
  'max-frame': { type: 'bytes', placeholder: 'BYTES', help: `largest frame accepted (default ${DEFAULT_CLIENT_MAX_FRAME_BYTES / 1024 / 1024}m)` },
} satisfies Record<string, FlagSpec>;

export const usage = `usage: edgeecho decode [--hex] [--max-frame BYTES] < frames.bin

Reads frames (4-byte big-endian length + msgpack) and prints each as one JSON line. Binary is shown as
{"$bin": "<base64>"}, integers beyond 2^53 as decimal strings.
A frame whose body is not msgpack prints {"kind":"malformed","error":{...},"hex":"..."} and decoding
goes on. A length of 0 or above --max-frame, or input ending inside a frame, cannot be resynchronised:
it prints a malformed line with "fatal": true, a message on stderr, and exits 1.

${formatFlags(FLAGS)}
`;

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"; decode reads stdin`);
  const splitter = new FrameSplitter(values['max-frame'] ?? DEFAULT_CLIENT_MAX_FRAME_BYTES);
  const write = async (line: string): Promise<void> => {
    if (!io.stdout.write(line + '\n')) await once(io.stdout, 'drain');
  };
  for await (const chunk of io.stdin as AsyncIterable<Buffer>) {
    const { bodies, error } = splitChunk(splitter, chunk);
    for (const body of bodies) {
      const frame = decodeBody(body);
      await write(frame.ok ? frameLine(frame.value, values.hex ? body : undefined) : malformedLine(frame.error, body));
    }
    if (error) {
      await write(malformedLine(error, undefined, true));
      io.stderr.write(`edgeecho decode: ${error.message}; the rest of the input cannot be framed\n`);
      return 1;
    }
  }
  if (splitter.pendingBytes > 0) {
    const error = new EdgeechoError('BAD_FRAME', `input ended inside a frame: ${splitter.pendingBytes} bytes of an incomplete frame`);
    await write(malformedLine(error, undefined, true));
    io.stderr.write(`edgeecho decode: ${error.message}\n`);
    return 1;
  }
  return 0;
}

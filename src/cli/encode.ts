/** `edgeecho encode`: JSON lines on stdin -> frames on stdout. */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { encodeFrame } from '../../protocol/codec.js';
import { formatFlags, parseFlags, UsageError, type CliIo, type FlagSpec } from './args.js';
import { IdFiller, parseJsonLine } from './frame-json.js';

const FLAGS = {
  'no-ids': { type: 'bool', help: 'leave maps without "id" as they are (to see how the daemon answers them)' },
} satisfies Record<string, FlagSpec>;

export const usage = `usage: edgeecho encode [--no-ids] < requests.jsonl > frames.bin

Reads one JSON value per line and writes each as a frame (4-byte big-endian length + msgpack). A map
without "id" gets the next free integer id. {"$bin": "<base64>"} is written as msgpack binary.
Blank lines are skipped; a line that is not JSON is reported on stderr and skipped (exit 1 at the end).

The daemon answers nothing but hello and ping until hello succeeds, so start the input with hello:
  {"op":"hello","args":{"client":"nc","protocol":1}}
  {"op":"ping"}
  edgeecho encode < reqs.jsonl | nc -q1 127.0.0.1 7411 | edgeecho decode

${formatFlags(FLAGS)}
`;

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"; encode reads stdin`);
  const ids = new IdFiller();
  let lineNo = 0;
  let failed = 0;
  for await (const line of createInterface({ input: io.stdin, crlfDelay: Infinity })) {
    lineNo++;
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = parseJsonLine(line);
    } catch (err) {
      failed++;
      io.stderr.write(`edgeecho encode: line ${lineNo}: expected one JSON value, ${(err as Error).message}\n`);
      continue;
    }
    if (values['no-ids'] !== true) ids.fill(value);
    if (!io.stdout.write(encodeFrame(value))) await once(io.stdout, 'drain');
  }
  if (failed) io.stderr.write(`edgeecho encode: ${failed} of ${lineNo} lines were not JSON and were skipped\n`);
  return failed ? 1 : 0;
}

/**
 * `edgeecho metrics`: the daemon's Prometheus metrics over the control port (the `metrics` op), for hosts where
 * only that port is reachable or EDGEECHO_METRICS is off.
 */
import { EdgeechoError } from '../../protocol/errors.js';
import { CONNECTION_FLAGS, formatFlags, parseFlags, UsageError, type CliIo, type FlagSpec } from './args.js';
import { requestOnce } from './one-request.js';

const FLAGS = { ...CONNECTION_FLAGS } satisfies Record<string, FlagSpec>;

export const usage = `usage: edgeecho metrics

Prints the daemon's metrics in the Prometheus text format, as its EDGEECHO_METRICS listener serves them.

${formatFlags(FLAGS)}
`;

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  return requestOnce(values, io, 'metrics', {}, (answer) => {
    const text = (answer as { text?: unknown } | null)?.text;
    if (typeof text !== 'string') throw new EdgeechoError('INTERNAL', `the metrics op answered no text: ${JSON.stringify(answer).slice(0, 200)}`);
    return text;
  });
}

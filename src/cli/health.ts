/**
 * `edgeecho health`: exit 0 when the daemon answers and its engine answers, 1 otherwise with the reason on
 * stderr. Made for a Docker HEALTHCHECK or a systemd ExecStartPost probe: bounded in time, one line of output.
 */
import { connect } from '../client/index.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { CONNECTION_FLAGS, connectionOptions, formatFlags, parseFlags, UsageError, type CliIo, type FlagSpec } from './args.js';
import { CLI_CLIENT_NAME } from './session.js';

/** The whole probe, connect included; a health check that hangs is worse than one that fails. */
const DEFAULT_HEALTH_TIMEOUT_MS = 10_000;

const FLAGS = {
  'timeout-ms': { type: 'int', placeholder: 'MS', min: 1, help: `bound on the whole check (default ${DEFAULT_HEALTH_TIMEOUT_MS})` },
  ...CONNECTION_FLAGS,
} satisfies Record<string, FlagSpec>;

export const usage = `usage: edgeecho health [--timeout-ms MS]

Exits 0 when the daemon answers and its container engine answers (a fresh \`resources\` sample), 1 otherwise,
with the reason on stderr. Use it as a Docker HEALTHCHECK or a systemd ExecStartPost probe.

${formatFlags(FLAGS)}
`;

interface EngineAnswer {
  engine?: { name?: unknown; reachable?: unknown; error?: unknown; running?: unknown };
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const timeoutMs = values['timeout-ms'] ?? DEFAULT_HEALTH_TIMEOUT_MS;
  const options = connectionOptions(values, io.env);
  const where = options.path ?? `${options.host}:${options.port}`;
  const signal = AbortSignal.timeout(timeoutMs);
  let client;
  try {
    client = await connect({ ...options, connectTimeoutMs: Math.min(timeoutMs, options.connectTimeoutMs ?? timeoutMs), client: CLI_CLIENT_NAME });
    const version = String(client.helloResult?.version ?? '?');
    const answer = await client.request<EngineAnswer>('resources', { fresh: true }, { signal });
    const engine = answer?.engine ?? {};
    const name = String(engine.name ?? 'engine');
    if (engine.reachable !== true) {
      io.stderr.write(`unhealthy: daemon ${version} at ${where} answers, but its ${name} engine does not: ${String(engine.error ?? 'no reason given')}\n`);
      return 1;
    }
    io.stdout.write(`healthy: daemon ${version} at ${where}, ${name} engine reachable, edgeecho containers running: ${String(engine.running ?? '?')}\n`);
    return 0;
  } catch (err) {
    const e = signal.aborted ? new EdgeechoError('TIMEOUT', `no answer within ${timeoutMs} ms (--timeout-ms)`) : EdgeechoError.from(err);
    io.stderr.write(`unhealthy: daemon at ${where}: ${e.code}: ${e.message}\n`);
    return 1;
  } finally {
    await client?.close().catch(() => undefined);
  }
}

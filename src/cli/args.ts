/**
 * Flag parsing shared by the client-side commands, and the connection flags every one of them takes
 * (--host --port --socket --token-file), with defaults from the same EDGEECHO_* variables the daemon reads.
 */
import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { EdgeechoError } from '../../protocol/errors.js';
import { parseBytes, SETTINGS } from '../config.js';
import { createTlsSocketFactory, type ConnectOptions } from '../client/index.js';

/** Streams and environment a command runs with; tests pass their own. */
export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

export function processIo(): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** What a command module exports; `run` resolves with the exit code (void: the command keeps running). */
export interface CommandModule {
  run(argv: string[], io: CliIo): Promise<number | void>;
  /** Printed for --help; main prints it without calling run. */
  usage?: string;
}

export type FlagSpec =
  | { type: 'string'; help: string; placeholder?: string }
  | { type: 'int'; help: string; placeholder?: string; min?: number; max?: number }
  | { type: 'bytes'; help: string; placeholder?: string }
  | { type: 'bool'; help: string };

type FlagValue<S extends FlagSpec> = S extends { type: 'bool' } ? boolean : S extends { type: 'int' | 'bytes' } ? number : string;
export type FlagValues<S extends Record<string, FlagSpec>> = { [K in keyof S]?: FlagValue<S[K]> };

/** A usage error: main prints it with the command's usage and exits 2. */
export class UsageError extends EdgeechoError {
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

/**
 * `--name value`, `--name=value`, `--flag`, `--no-flag`; `--` ends flags. Unknown flags are refused so a
 * typo never silently falls back to a default.
 */
export function parseFlags<S extends Record<string, FlagSpec>>(argv: string[], specs: S): { values: FlagValues<S>; positionals: string[] } {
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let inline: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    // own keys only: --constructor must not find Object.prototype.constructor
    const specOf = (key: string): FlagSpec | undefined => (Object.hasOwn(specs, key) ? specs[key] : undefined);
    let spec: FlagSpec | undefined = specOf(name);
    if (!spec && name.startsWith('no-') && specOf(name.slice(3))?.type === 'bool' && inline === undefined) {
      name = name.slice(3);
      spec = specOf(name);
      inline = 'false';
    }
    if (!spec) {
      throw new UsageError(`unknown flag --${name}; expected one of ${Object.keys(specs).map((k) => '--' + k).join(', ')}`);
    }
    if (spec.type === 'bool') {
      if (inline === undefined) values[name] = true;
      else if (/^(1|true|yes|on)$/i.test(inline)) values[name] = true;
      else if (/^(0|false|no|off)$/i.test(inline)) values[name] = false;
      else throw new UsageError(`--${name}: expected true or false, got "${inline}"`);
      continue;
    }
    const text = inline ?? argv[++i];
    if (text === undefined) throw new UsageError(`--${name}: expects a value (${spec.placeholder ?? spec.type})`);
    values[name] = parseFlagValue(name, spec, text);
  }
  return { values: values as FlagValues<S>, positionals };
}

function parseFlagValue(name: string, spec: FlagSpec, text: string): string | number {
  switch (spec.type) {
    case 'int': {
      const n = Number(text);
      const min = spec.min ?? Number.MIN_SAFE_INTEGER;
      const max = spec.max ?? Number.MAX_SAFE_INTEGER;
      if (!/^-?\d+$/.test(text.trim()) || n < min || n > max) throw new UsageError(`--${name}: expected an integer in ${min}..${max}, got "${text}"`);
      return n;
    }
    case 'bytes': {
      const n = parseBytes(text);
      if (n === null || n < 1) throw new UsageError(`--${name}: expected a byte size like 65536, 512k or 8m, got "${text}"`);
      return n;
    }
    default:
      return text;
  }
}

/** Help lines for a flag table, aligned. */
export function formatFlags(specs: Record<string, FlagSpec>): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const value = spec.type === 'bool' ? '' : ` ${spec.placeholder ?? spec.type.toUpperCase()}`;
    return [`  --${name}${value}`, spec.help] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, help]) => left.padEnd(width) + help).join('\n');
}

/** Client-side TLS has no daemon setting of its own: these two variables are read by the CLI only. */
export const TLS_ENV = 'EDGEECHO_TLS';
export const TLS_CA_ENV = 'EDGEECHO_TLS_CA';

/** Where to find the daemon and how to talk to it (token, TLS). */
export const CONNECTION_FLAGS = {
  host: { type: 'string', placeholder: 'HOST', help: `daemon TCP address (${SETTINGS.host.env}, default ${SETTINGS.host.default()})` },
  port: { type: 'int', placeholder: 'PORT', min: 1, max: 65535, help: `daemon TCP port (${SETTINGS.port.env}, default ${SETTINGS.port.default()})` },
  socket: { type: 'string', placeholder: 'PATH', help: `daemon unix socket; wins over TCP unless --host/--port are given (${SETTINGS.socket.env})` },
  'token-file': { type: 'string', placeholder: 'FILE', help: `file holding the token sent in hello (${SETTINGS.tokenFile.env})` },
  'connect-timeout-ms': { type: 'int', placeholder: 'MS', min: 1, help: 'bound on connecting and the handshake (default 10000)' },
  tls: { type: 'bool', help: `speak TLS to the daemon's TCP port (${TLS_ENV}=1; implied by --tls-ca)` },
  'tls-ca': { type: 'string', placeholder: 'FILE', help: `PEM CA certificate to trust for the daemon, default the system store (${TLS_CA_ENV})` },
} satisfies Record<string, FlagSpec>;

export type ConnectionFlagValues = FlagValues<typeof CONNECTION_FLAGS>;

/**
 * Flags win over env; an explicit --socket wins over everything, and explicit --host/--port over
 * EDGEECHO_SOCKET, so `--port 7500` means TCP even where the environment names a socket.
 */
export function connectionOptions(values: ConnectionFlagValues, env: NodeJS.ProcessEnv): ConnectOptions {
  const options: ConnectOptions = {};
  const socket = values.socket ?? (values.host === undefined && values.port === undefined ? env[SETTINGS.socket.env] : undefined);
  if (socket) options.path = socket;
  else {
    options.host = values.host ?? (env[SETTINGS.host.env] || SETTINGS.host.default());
    const portText = env[SETTINGS.port.env] || SETTINGS.port.default();
    const envPort = Number(portText);
    if (values.port === undefined && (!/^\d+$/.test(portText.trim()) || envPort < 1 || envPort > 65535)) {
      throw new UsageError(`${SETTINGS.port.env}: expected a port in 1..65535 to connect to, got "${portText}"`);
    }
    options.port = values.port ?? envPort;
  }
  const tokenFile = values['token-file'] ?? env[SETTINGS.tokenFile.env];
  if (tokenFile) {
    try {
      options.token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      const from = values['token-file'] !== undefined ? '--token-file' : SETTINGS.tokenFile.env;
      throw new UsageError(`${from}: cannot read token file ${tokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  if (values['connect-timeout-ms'] !== undefined) options.connectTimeoutMs = values['connect-timeout-ms'];
  const caFile = values['tls-ca'] ?? (env[TLS_CA_ENV] || undefined);
  const tls = values.tls ?? (caFile !== undefined || /^(1|true|yes|on)$/i.test(env[TLS_ENV] ?? ''));
  if (tls) {
    if (options.path) throw new UsageError(`TLS is for the daemon's TCP port; got unix socket ${options.path} (drop --tls/--tls-ca or give --host/--port)`);
    let ca: Buffer | undefined;
    if (caFile !== undefined) {
      try {
        ca = readFileSync(caFile);
      } catch (err) {
        const from = values['tls-ca'] !== undefined ? '--tls-ca' : TLS_CA_ENV;
        throw new UsageError(`${from}: cannot read CA certificate ${caFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
    }
    // As a socket factory, so commands that open raw streams (cat) get TLS too, not only connect().
    options.createSocket = createTlsSocketFactory(ca !== undefined ? { ca } : {});
  }
  return options;
}

/**
 * The one place config is read: env vars EDGEECHO_*, overridden by command-line flags, validated at start.
 * Every setting has a default. Flags are the env name without the prefix, lower-cased, dashes for
 * underscores: EDGEECHO_SESSION_TTL_S -> --session-ttl-s. `edgeecho config` prints the table.
 */
import { homedir, cpus, totalmem } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EdgeechoError } from '../protocol/errors.js';

export const PACKAGE_VERSION: string = (
  JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url).href.replace(/\/dist\/package\.json$/, '/package.json')), 'utf8')) as {
    version: string;
  }
).version;

type Kind = 'string' | 'int' | 'bytes' | 'bool' | 'enum' | 'mode' | 'limits' | 'cidr' | 'cron';

interface Setting {
  env: string;
  kind: Kind;
  default: () => string;
  help: string;
  min?: number;
  max?: number;
  values?: readonly string[];
}

const defaultDataDir = (): string =>
  process.env.STATE_DIRECTORY?.split(':')[0] ?? join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'edgeecho');

/** The settings, in README order. Keys are the camelCase form used in code. */
export const SETTINGS = {
  host: { env: 'EDGEECHO_HOST', kind: 'string', default: () => '127.0.0.1', help: 'TCP listen address; a non-loopback address requires EDGEECHO_TOKEN_FILE' },
  port: { env: 'EDGEECHO_PORT', kind: 'int', min: 0, max: 65535, default: () => '7411', help: 'TCP listen port (0: any free port)' },
  tcp: { env: 'EDGEECHO_TCP', kind: 'bool', default: () => 'true', help: 'listen on TCP at all (false: unix socket or systemd sockets only)' },
  socket: { env: 'EDGEECHO_SOCKET', kind: 'string', default: () => '', help: 'unix socket path to listen on as well (empty: none)' },
  socketMode: { env: 'EDGEECHO_SOCKET_MODE', kind: 'mode', default: () => '0660', help: 'file mode of the unix socket (octal)' },
  socketGroup: { env: 'EDGEECHO_SOCKET_GROUP', kind: 'string', default: () => '', help: 'group owning the unix socket (name or gid; empty: unchanged)' },
  dataDir: { env: 'EDGEECHO_DATA_DIR', kind: 'string', default: defaultDataDir, help: 'session records (SQLite); $STATE_DIRECTORY under systemd, else ~/.local/state/edgeecho' },
  logLevel: { env: 'EDGEECHO_LOG_LEVEL', kind: 'enum', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], default: () => 'info', help: 'pino log level' },
  maxFrame: { env: 'EDGEECHO_MAX_FRAME', kind: 'bytes', min: 64, max: 64 * 1024 * 1024, default: () => '1m', help: 'largest control frame accepted, in bytes (k/m suffixes)' },
  handshakeTimeoutMs: { env: 'EDGEECHO_HANDSHAKE_TIMEOUT_MS', kind: 'int', min: 100, max: 600_000, default: () => '10000', help: 'a connection must complete hello within this time' },
  idleTimeoutMs: { env: 'EDGEECHO_IDLE_TIMEOUT_MS', kind: 'int', min: 1000, max: 86_400_000, default: () => '120000', help: 'a connection with no frame from the client and no request in flight is closed after this' },
  maxInflight: { env: 'EDGEECHO_MAX_INFLIGHT', kind: 'int', min: 1, max: 100_000, default: () => '1024', help: 'requests in flight per connection' },
  maxConnections: { env: 'EDGEECHO_MAX_CONNECTIONS', kind: 'int', min: 1, max: 1_000_000, default: () => '4096', help: 'concurrent connections' },
  maxWriteBuffer: { env: 'EDGEECHO_MAX_WRITE_BUFFER', kind: 'bytes', min: 64 * 1024, max: 1024 * 1024 * 1024, default: () => '8m', help: 'unsent bytes held for a client that stops reading before it is disconnected' },
  stallTimeoutMs: { env: 'EDGEECHO_STALL_TIMEOUT_MS', kind: 'int', min: 100, max: 600_000, default: () => '10000', help: 'a connection whose output the client has not read for this long is disconnected (its requests are not read meanwhile)' },
  shutdownTimeoutMs: { env: 'EDGEECHO_SHUTDOWN_TIMEOUT_MS', kind: 'int', min: 0, max: 600_000, default: () => '10000', help: 'in-flight requests may finish within this on SIGTERM' },
  tokenFile: { env: 'EDGEECHO_TOKEN_FILE', kind: 'string', default: () => '', help: 'file holding the token clients present in hello (empty: no auth, loopback only)' },
  authMaxFailures: { env: 'EDGEECHO_AUTH_MAX_FAILURES', kind: 'int', min: 1, max: 1000, default: () => '5', help: 'failed hellos per peer address per minute before further attempts are refused' },
  tlsCert: { env: 'EDGEECHO_TLS_CERT', kind: 'string', default: () => '', help: 'PEM certificate file: serve TLS on the TCP listener' },
  tlsKey: { env: 'EDGEECHO_TLS_KEY', kind: 'string', default: () => '', help: 'PEM private key file for EDGEECHO_TLS_CERT' },
  runtime: { env: 'EDGEECHO_RUNTIME', kind: 'enum', values: ['auto', 'docker', 'local', 'swarm'], default: () => 'auto', help: 'what runs sessions: docker (containers), local (child processes of the host node, no Docker needed), swarm (services on a Docker Swarm, the daemon on a manager; never chosen by auto) or auto (docker when an engine answers at start, else local)' },
  metrics: { env: 'EDGEECHO_METRICS', kind: 'string', default: () => '', help: 'host:port of the Prometheus listener, GET /metrics (empty: off; a non-loopback address requires EDGEECHO_TOKEN_FILE, and a token, when set, is required as a Bearer header)' },
  dockerSocket: { env: 'EDGEECHO_DOCKER_SOCKET', kind: 'string', default: () => process.env.DOCKER_HOST?.replace(/^unix:\/\//, '') ?? '/var/run/docker.sock', help: 'Docker engine socket' },
  imageProbe: { env: 'EDGEECHO_IMAGE_PROBE', kind: 'string', default: () => `edgeecho/probe:${PACKAGE_VERSION}`, help: 'image run as the probe' },
  imageStream: { env: 'EDGEECHO_IMAGE_STREAM', kind: 'string', default: () => `edgeecho/stream:${PACKAGE_VERSION}`, help: 'image run as the stream server' },
  imageSegmentation: { env: 'EDGEECHO_IMAGE_SEGMENTATION', kind: 'string', default: () => `edgeecho/segmentation:${PACKAGE_VERSION}`, help: 'image run as the segmentation server' },
  baseImage: { env: 'EDGEECHO_BASE_IMAGE', kind: 'string', default: () => 'node:20-bookworm-slim', help: 'base for the emulator images; built from the host node when absent' },
  buildImages: { env: 'EDGEECHO_BUILD_IMAGES', kind: 'bool', default: () => 'true', help: 'build missing emulator images at daemon start' },
  publishHost: { env: 'EDGEECHO_PUBLISH_HOST', kind: 'string', default: () => '127.0.0.1', help: 'host IP the stream server port is published on' },
  swarmEndpointMode: { env: 'EDGEECHO_SWARM_ENDPOINT_MODE', kind: 'enum', values: ['dnsrr', 'vip'], default: () => 'dnsrr', help: 'swarm runtime: how roles find each other on the session network (vip needs IPVS in the nodes\' kernels)' },
  swarmConstraints: { env: 'EDGEECHO_SWARM_CONSTRAINTS', kind: 'string', default: () => '', help: 'swarm runtime: node labels a node must match to take sessions, label=value or label!=value, comma-separated (empty: every node)' },
  swarmCpuRatio: { env: 'EDGEECHO_SWARM_CPU_RATIO', kind: 'int', min: 1, max: 64, default: () => '4', help: 'swarm runtime: a node\'s CPUs times this is what the CPU limits of sessions placed there may add up to (limits are ceilings)' },
  swarmPorts: { env: 'EDGEECHO_SWARM_PORTS', kind: 'string', default: () => '30000-32767', help: 'swarm runtime: host ports streams are published on, first-last (each node\'s own; below the kernel\'s ephemeral range by default)' },
  swarmPollMs: { env: 'EDGEECHO_SWARM_POLL_MS', kind: 'int', min: 50, max: 60_000, default: () => '250', help: 'swarm runtime: how often the manager\'s task and node lists are read to see roles end and nodes go down' },
  subnetPool: { env: 'EDGEECHO_SUBNET_POOL', kind: 'cidr', default: () => '10.213.0.0/16', help: 'address pool session networks are cut from' },
  subnetPrefix: { env: 'EDGEECHO_SUBNET_PREFIX', kind: 'int', min: 16, max: 29, default: () => '28', help: 'prefix length of each session network' },
  limitsProbe: { env: 'EDGEECHO_LIMITS_PROBE', kind: 'limits', default: () => 'memory=128m,cpus=0.5,pids=64', help: 'container limits of the probe' },
  limitsStream: { env: 'EDGEECHO_LIMITS_STREAM', kind: 'limits', default: () => 'memory=256m,cpus=1,pids=64', help: 'container limits of the stream server' },
  limitsSegmentation: { env: 'EDGEECHO_LIMITS_SEGMENTATION', kind: 'limits', default: () => 'memory=128m,cpus=0.5,pids=64', help: 'container limits of the segmentation server' },
  readyTimeoutMs: { env: 'EDGEECHO_READY_TIMEOUT_MS', kind: 'int', min: 100, max: 600_000, default: () => '30000', help: 'a container must be ready within this' },
  stopTimeoutS: { env: 'EDGEECHO_STOP_TIMEOUT_S', kind: 'int', min: 0, max: 300, default: () => '5', help: 'SIGTERM grace before SIGKILL when stopping containers' },
  plainGraceMs: { env: 'EDGEECHO_PLAIN_GRACE_MS', kind: 'int', min: 0, max: 3_600_000, default: () => '10000', help: 'a plain stream starts after this even if no consumer connects' },
  maxCount: { env: 'EDGEECHO_MAX_COUNT', kind: 'int', min: 1, max: 1_000_000_000, default: () => '10000000', help: 'largest frame count a session may ask for' },
  maxPayloadBytes: { env: 'EDGEECHO_MAX_PAYLOAD_BYTES', kind: 'int', min: 1, max: 1_048_576, default: () => '65536', help: 'largest payload size a session may ask for' },
  maxSessions: { env: 'EDGEECHO_MAX_SESSIONS', kind: 'int', min: 1, max: 10_000, default: () => '32', help: 'concurrent live sessions' },
  capacityMemory: { env: 'EDGEECHO_CAPACITY_MEMORY', kind: 'bytes', min: 0, max: Number.MAX_SAFE_INTEGER, default: () => String(Math.floor(totalmem() * 0.8)), help: 'memory that session reservations may add up to (default 80% of host memory)' },
  capacityCpus: { env: 'EDGEECHO_CAPACITY_CPUS', kind: 'int', min: 1, max: 4096, default: () => String(cpus().length * 4), help: 'CPUs that session reservations may add up to (default 4x the host cores: limits are ceilings, not usage)' },
  minFreeMemory: { env: 'EDGEECHO_MIN_FREE_MEMORY', kind: 'bytes', min: 0, max: Number.MAX_SAFE_INTEGER, default: () => '256m', help: 'refuse sessions while host available memory is below this' },
  sessionTtlS: { env: 'EDGEECHO_SESSION_TTL_S', kind: 'int', min: 10, max: 30 * 86_400, default: () => '3600', help: 'a session still live after this is stopped and marked failed' },
  sweepCron: { env: 'EDGEECHO_SWEEP_CRON', kind: 'cron', default: () => '*/30 * * * * *', help: 'safety-net sweep schedule (cron with seconds)' },
  orphanGraceS: { env: 'EDGEECHO_ORPHAN_GRACE_S', kind: 'int', min: 0, max: 86_400, default: () => '60', help: 'objects of this instance that no record claims are removed once older than this (other instances\' never are)' },
  retentionDays: { env: 'EDGEECHO_RETENTION_DAYS', kind: 'int', min: 0, max: 3650, default: () => '14', help: 'finished session records older than this are pruned' },
  keepFailed: { env: 'EDGEECHO_KEEP_FAILED', kind: 'bool', default: () => 'false', help: 'keep failed sessions\' containers for debugging (removed by the TTL sweep)' },
  stopSessionsOnShutdown: { env: 'EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN', kind: 'bool', default: () => 'false', help: 'stop live sessions on shutdown instead of adopting them at the next start' },
  resourcesCron: { env: 'EDGEECHO_RESOURCES_CRON', kind: 'cron', default: () => '*/5 * * * * *', help: 'resource sampling schedule (cron with seconds)' },
  poolPlain: { env: 'EDGEECHO_POOL_PLAIN', kind: 'int', min: 0, max: 1000, default: () => '0', help: 'parked plain sessions kept warm for creates to claim (0: off; each holds its reservation)' },
  poolSegmented: { env: 'EDGEECHO_POOL_SEGMENTED', kind: 'int', min: 0, max: 1000, default: () => '0', help: 'parked segmented sessions kept warm for creates to claim (0: off)' },
  poolMaxAgeS: { env: 'EDGEECHO_POOL_MAX_AGE_S', kind: 'int', min: 10, max: 30 * 86_400, default: () => '3600', help: 'a parked session unclaimed this long is replaced by a fresh one' },
  poolRefillConcurrency: { env: 'EDGEECHO_POOL_REFILL_CONCURRENCY', kind: 'int', min: 1, max: 64, default: () => '2', help: 'parked sessions made at once when refilling the pools' },
  objectLabels: { env: 'EDGEECHO_OBJECT_LABELS', kind: 'string', default: () => '', help: 'extra labels on every session container and network, key=value[,key=value] (empty: none)' },
} satisfies Record<string, Setting>;

export type SettingKey = keyof typeof SETTINGS;

export interface RoleLimits {
  memoryBytes: number;
  nanoCpus: number;
  pids: number;
}

type ValueOf<K extends Kind> = K extends 'int' | 'bytes' | 'mode'
  ? number
  : K extends 'bool'
    ? boolean
    : K extends 'limits'
      ? RoleLimits
      : string;

export type Config = { -readonly [K in SettingKey]: ValueOf<(typeof SETTINGS)[K]['kind']> };

export function flagName(key: SettingKey): string {
  return '--' + SETTINGS[key].env.replace(/^EDGEECHO_/, '').toLowerCase().replace(/_/g, '-');
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

export function parseBytes(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?b?)$/i.exec(text.trim());
  if (!m) return null;
  const n = Math.floor(Number(m[1]) * BYTE_UNITS[m[2]!.toLowerCase()]!);
  return Number.isSafeInteger(n) ? n : null;
}

function parseLimits(text: string): RoleLimits | string {
  const out: Partial<RoleLimits> = {};
  for (const part of text.split(',')) {
    const [k, v = ''] = part.split('=').map((s) => s.trim());
    if (k === 'memory') {
      const b = parseBytes(v);
      if (b === null || b < 6 * 1024 * 1024) return `memory=${v}: expected bytes >= 6m`;
      out.memoryBytes = b;
    } else if (k === 'cpus') {
      const c = Number(v);
      if (!(c > 0 && c <= 1024)) return `cpus=${v}: expected a number in (0, 1024]`;
      out.nanoCpus = Math.round(c * 1e9);
    } else if (k === 'pids') {
      const p = Number(v);
      if (!Number.isInteger(p) || p < 8) return `pids=${v}: expected an integer >= 8`;
      out.pids = p;
    } else return `unknown limit "${k}"; expected memory=, cpus=, pids=`;
  }
  if (out.memoryBytes === undefined || out.nanoCpus === undefined || out.pids === undefined) {
    return 'expected all of memory=..., cpus=..., pids=...';
  }
  return out as RoleLimits;
}

function parseValue(setting: Setting, raw: string): unknown | { error: string } {
  const text = raw.trim();
  switch (setting.kind) {
    case 'string':
      return text;
    case 'int': {
      if (!/^-?\d+$/.test(text)) return { error: `expected an integer, got "${raw}"` };
      const n = Number(text);
      if (n < (setting.min ?? -Infinity) || n > (setting.max ?? Infinity)) return { error: `expected ${setting.min}..${setting.max}, got ${n}` };
      return n;
    }
    case 'bytes': {
      const n = parseBytes(text);
      if (n === null) return { error: `expected a byte size like 65536, 512k or 8m, got "${raw}"` };
      if (n < (setting.min ?? 0) || n > (setting.max ?? Infinity)) return { error: `expected ${setting.min}..${setting.max} bytes, got ${n}` };
      return n;
    }
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(text)) return true;
      if (/^(0|false|no|off)$/i.test(text)) return false;
      return { error: `expected true or false, got "${raw}"` };
    case 'enum':
      return setting.values!.includes(text) ? text : { error: `expected one of ${setting.values!.join(', ')}, got "${raw}"` };
    case 'mode':
      return /^0?[0-7]{3}$/.test(text) ? parseInt(text, 8) : { error: `expected an octal file mode like 0660, got "${raw}"` };
    case 'limits': {
      const limits = parseLimits(text);
      return typeof limits === 'string' ? { error: limits } : limits;
    }
    case 'cidr': {
      const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
      const ok = m && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) >= 8 && Number(m[5]) <= 28;
      return ok ? text : { error: `expected an IPv4 CIDR like 10.213.0.0/16 (prefix 8..28), got "${raw}"` };
    }
    case 'cron': {
      const fields = text.split(/\s+/);
      return fields.length === 6 ? text : { error: `expected a 6-field cron expression with seconds, got "${raw}"` };
    }
  }
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Flags like ['--port', '7500'] or ['--port=7500']; anything not a setting is returned in `rest`. */
  argv?: string[];
}

/** Reads env then flags; throws BAD_REQUEST naming every bad setting at once. */
export function loadConfig(options: LoadOptions = {}): { config: Config; rest: string[] } {
  const env = options.env ?? process.env;
  const raw = new Map<SettingKey, { text: string; from: string }>();
  const keys = Object.keys(SETTINGS) as SettingKey[];
  for (const key of keys) {
    const value = env[SETTINGS[key].env];
    if (value !== undefined) raw.set(key, { text: value, from: SETTINGS[key].env });
  }
  const byFlag = new Map(keys.map((k) => [flagName(k), k]));
  const rest: string[] = [];
  const problems: string[] = [];
  const argv = options.argv ?? [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const key = byFlag.get(flag);
    if (!key) {
      rest.push(arg);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (SETTINGS[key].kind === 'bool' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) value = 'true';
      else if (argv[i + 1] === undefined) {
        problems.push(`${flag}: expects a value`);
        continue;
      } else value = argv[++i]!;
    }
    raw.set(key, { text: value, from: flag });
  }
  const config: Record<string, unknown> = {};
  for (const key of keys) {
    const setting: Setting = SETTINGS[key];
    const given = raw.get(key);
    const parsed = parseValue(setting, given?.text ?? setting.default());
    if (parsed && typeof parsed === 'object' && 'error' in parsed) {
      problems.push(`${given?.from ?? setting.env + ' (default)'}: ${(parsed as { error: string }).error}`);
    } else config[key] = parsed;
  }
  if (config.dataDir === '') {
    problems.push(`${raw.get('dataDir')?.from ?? 'EDGEECHO_DATA_DIR'}: expected a directory, got an empty value (records, local runtime files and logs would land in the working directory)`);
  } else if (typeof config.dataDir === 'string') {
    // One meaning wherever the path is used later (spawned roles, the systemd unit's working directory).
    config.dataDir = resolvePath(config.dataDir);
  }
  if (typeof config.objectLabels === 'string') {
    try {
      parseObjectLabels(config.objectLabels);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length) {
    throw new EdgeechoError('BAD_REQUEST', `invalid configuration:\n  ${problems.join('\n  ')}`, { problems });
  }
  return { config: config as Config, rest };
}

/** EDGEECHO_OBJECT_LABELS as a label map; io.edgeecho.managed/session/role/instance stay the daemon's own. */
export function parseObjectLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const key = eq > 0 ? part.slice(0, eq).trim() : '';
    if (!/^[a-z0-9][a-z0-9._-]*$/i.test(key) || /^io\.edgeecho\.(managed|session|role|instance)$/.test(key)) {
      throw new EdgeechoError('BAD_REQUEST', `EDGEECHO_OBJECT_LABELS: expected key=value pairs with keys other than io.edgeecho.managed/session/role/instance, got "${part}"`);
    }
    labels[key] = part.slice(eq + 1).trim();
  }
  return labels;
}

/** The markdown table in the README is this function's output. */
export function settingsTable(): string {
  const rows = (Object.keys(SETTINGS) as SettingKey[]).map((key) => {
    const s: Setting = SETTINGS[key];
    const def = key === 'dataDir' ? '`$STATE_DIRECTORY` or `~/.local/state/edgeecho`' : key === 'capacityMemory' ? '80% of host memory' : key === 'capacityCpus' ? '4 x host cores' : key === 'dockerSocket' ? '`/var/run/docker.sock`' : s.default() === '' ? '(empty)' : '`' + s.default() + '`';
    return `| \`${s.env}\` | \`${flagName(key)}\` | ${def} | ${s.help} |`;
  });
  return ['| env | flag | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

/**
 * `edgeecho resources`: the node's capacity and what sessions hold, as a readable table (or the `resources`
 * op's answer as one JSON line). Rendering is a pure function of that answer.
 */
import { CONNECTION_FLAGS, formatFlags, parseFlags, UsageError, type CliIo, type FlagSpec } from './args.js';
import { frameLine } from './frame-json.js';
import { requestOnce } from './one-request.js';
import { renderTable } from './session.js';

const FLAGS = {
  fresh: { type: 'bool', help: 'sample now instead of answering with the latest scheduled sample' },
  json: { type: 'bool', help: 'print the answer as one JSON line (the default when stdout is not a terminal)' },
  ...CONNECTION_FLAGS,
} satisfies Record<string, FlagSpec>;

export const usage = `usage: edgeecho resources [--fresh] [--json]

Shows the host (CPU, memory, load, disk of the data directory), the runtime serving sessions (docker: this daemon's
containers and networks, and counts of those of other instances; local: its processes; swarm: its services), what
admission has reserved against capacity, per-session usage, and under the swarm runtime its nodes (state,
availability, labels, capacity, what sessions placed there hold, and whether new sessions may go there).

${formatFlags(FLAGS)}
`;

/** 512 B, 1.5 KiB, 200.0 MiB, 3.2 GiB. */
export function formatBytes(n: unknown): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const pct = (n: unknown): string => (typeof n === 'number' && Number.isFinite(n) ? `${n.toFixed(1)}%` : '-');
const num = (n: unknown): string => (typeof n === 'number' && Number.isFinite(n) ? String(Math.round(n * 100) / 100) : '-');

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});

export function renderResources(answer: unknown): string {
  const data = obj(answer);
  const host = obj(data.host);
  const engine = obj(data.engine);
  const admission = data.admission === undefined ? null : obj(data.admission);
  const sessions = Array.isArray(data.sessions) ? (data.sessions as unknown[]).map(obj) : [];
  const out: string[] = [];
  if (typeof data.at === 'number') out.push(`sampled ${new Date(data.at).toISOString()}`, '');

  const load = Array.isArray(host.load) ? (host.load as unknown[]).map(num).join(' ') : '-';
  const memUsed = typeof host.memory_total_bytes === 'number' && typeof host.memory_available_bytes === 'number' ? host.memory_total_bytes - host.memory_available_bytes : undefined;
  const diskUsed = typeof host.disk_total_bytes === 'number' && typeof host.disk_free_bytes === 'number' ? host.disk_total_bytes - host.disk_free_bytes : undefined;
  const hostRows = [
    ['HOST', 'USED', 'TOTAL', ''],
    ['cpu', pct(host.cpu_percent), `${num(host.cpus)} cores`, `load ${load}`],
    ['memory', formatBytes(memUsed), formatBytes(host.memory_total_bytes), `${formatBytes(host.memory_available_bytes)} available`],
    ['disk', formatBytes(diskUsed), formatBytes(host.disk_total_bytes), host.data_dir ? String(host.data_dir) : ''],
  ];
  out.push(renderTable(hostRows).trimEnd(), '');

  const engineState = engine.reachable === false ? `unreachable${engine.error ? ': ' + String(engine.error) : ''}` : 'reachable';
  // The local runtime's "containers" are processes and its "networks" per-session records: say so.
  const [things, nets] = engine.name === 'local' ? ['processes', 'session records'] : engine.name === 'swarm' ? ['services', 'networks'] : ['containers', 'networks'];
  out.push(`runtime   ${String(engine.name ?? 'docker')} (${engineState}): ${num(engine.running)} of ${num(engine.containers)} ${things} running, ${num(engine.networks)} ${nets}`);
  if (typeof data.instance === 'string') out.push(`instance  ${data.instance}`);
  // Other daemons' objects, and old unlabelled ones: shown so an operator sees what this daemon leaves alone.
  for (const [key, what] of [['foreign', 'of other instances'], ['unlabelled', 'without an instance label, claimed by no record here']] as const) {
    const o = engine[key] === undefined ? null : obj(engine[key]);
    if (o && (Number(o.containers) > 0 || Number(o.networks) > 0)) {
      out.push(`          ${key}: ${num(o.running)} of ${num(o.containers)} ${things} running, ${num(o.networks)} ${nets} ${what} (left alone)`);
    }
  }

  if (admission) {
    out.push(
      `admission ${num(admission.sessions)} of ${num(admission.max_sessions)} sessions, ` +
        `memory ${formatBytes(admission.reserved_memory_bytes)} of ${formatBytes(admission.capacity_memory_bytes)}, ` +
        `cpus ${num(admission.reserved_cpus)} of ${num(admission.capacity_cpus)} reserved`,
    );
  }
  const pool = data.pool === undefined ? null : obj(data.pool);
  for (const [mode, p] of Object.entries(pool ?? {}).map(([m, v]) => [m, obj(v)] as const)) {
    out.push(
      `pool      ${mode}: ${num(p.parked)} of ${num(p.size)} parked, ${num(p.refilling)} refilling, ${num(p.hits)} hits, ${num(p.misses)} misses, ` +
        `${num(p.recycled)} recycled, ${num(p.failed)} failed parks${p.error ? ` (${String(p.error)})` : ''}`,
    );
  }
  const nodes = Array.isArray(data.nodes) ? (data.nodes as unknown[]).map(obj) : null;
  if (nodes) {
    out.push('');
    const rows = nodes.map((n) => [
      String(n.hostname ?? '?'),
      String(n.address ?? '-'),
      `${String(n.state ?? '?')}/${String(n.availability ?? '?')}`,
      `${formatBytes(n.reserved_memory_bytes)} of ${formatBytes(n.capacity_memory_bytes)}`,
      `${num(n.reserved_cpus)} of ${num(n.capacity_cpus)}`,
      num(n.sessions),
      n.eligible === false ? `no: ${String(n.why ?? '')}` : 'yes',
      Object.entries(obj(n.labels))
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(',') || '-',
    ]);
    out.push(renderTable([['NODE', 'ADDRESS', 'STATE', 'MEMORY', 'CPUS', 'SESSIONS', 'TAKES SESSIONS', 'LABELS'], ...rows]).trimEnd());
  }
  if (typeof data.nodes_error === 'string') out.push(`nodes     unreadable: ${data.nodes_error}`);
  out.push('');
  if (sessions.length === 0) out.push('no live sessions');
  else {
    const rows = sessions.map((s) => [String(s.session ?? '?'), num(s.containers), pct(s.cpu_percent), formatBytes(s.memory_bytes), formatBytes(s.memory_limit_bytes)]);
    out.push(renderTable([['SESSION', 'CONTAINERS', 'CPU', 'MEMORY', 'LIMIT'], ...rows]).trimEnd());
  }
  return out.join('\n') + '\n';
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS);
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const json = values.json ?? (io.stdout as { isTTY?: boolean }).isTTY !== true;
  return requestOnce(values, io, 'resources', values.fresh ? { fresh: true } : {}, (answer) => (json ? frameLine(answer) + '\n' : renderResources(answer)));
}

/**
 * The local-process RuntimeDriver: each role runs as a child of the host's node, executing the same bundled
 * emulators the images carry. A "network" is a per-session record (no isolation: roles share the host's network
 * and find each other on loopback ports this driver hands out); a "container" is a process record under the data
 * dir with the pid and its start time, so after a daemon restart live processes are adopted (their exit noticed
 * by watching /proc) and nothing is ever signalled that this runtime did not start.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { Logger } from 'pino';
import { EdgeechoError } from '../../../protocol/errors.js';
import { silentLogger } from '../../log.js';
import {
  LABEL_INSTANCE,
  type ContainerRef,
  type ContainerSpec,
  type ContainerState,
  type ContainerUsage,
  type ManagedObjects,
  type NetworkRef,
  type NetworkSpec,
  type ReadyInfo,
  type RuntimeDriver,
  type RuntimeEvent,
} from '../driver.js';
import { EventHub } from './event-hub.js';
import type { LocalLayout } from './layout.js';
import { boundFile, DEFAULT_LOG_MAX_BYTES, readTail, tailLines } from './log-files.js';
import { PortAllocator } from './ports.js';
import { CLOCK_TICKS_PER_S, identityOf, isAlive, readProcStat, residentBytes, uptimeS } from './proc.js';
import { waitForReadyLine } from './ready-line.js';
import { RecordFiles, type Endpoint, type NetworkRecord, type ProcessRecord } from './records.js';
import { findMarked, lowerPriority, spawnRole } from './spawn-role.js';

/** How often processes this driver did not start (adopted after a restart) are looked up in /proc. */
export const DEFAULT_ADOPTED_WATCH_MS = 250;
/** How often running roles' log files are held to their bound. */
export const LOG_BOUND_EVERY_MS = 10_000;
/** A process still there this long after SIGKILL is reported, not waited for forever. */
export const KILL_WAIT_MS = 5_000;
/** A role starting before its upstream was created waits this long for the upstream's address. */
export const UPSTREAM_WAIT_MS = 5_000;
/** What `subnet` says for a local session: there is none; roles share the host's network. */
export const LOCAL_SUBNET = 'host';

export interface LocalDriverOptions {
  layout: LocalLayout;
  /** EDGEECHO_PUBLISH_HOST: where a role with `publish` listens (the others listen on loopback). */
  publishHost: string;
  log?: Logger;
  adoptedWatchMs?: number;
  logMaxBytes?: number;
  logBoundEveryMs?: number;
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);

export class LocalDriver implements RuntimeDriver {
  readonly name = 'local';
  private readonly files: RecordFiles;
  private readonly log: Logger;
  private readonly hub = new EventHub();
  private readonly networks = new Map<string, NetworkRecord>();
  private readonly processes = new Map<string, ProcessRecord>();
  /** Processes this driver started: their exit arrives as a child 'exit' event, no polling. */
  private readonly children = new Map<string, ChildProcess>();
  private readonly exitWaiters = new Map<string, Set<() => void>>();
  private readonly pendingPorts = new Map<string, Promise<Endpoint>>();
  private readonly ports = new PortAllocator();
  private readonly declared = new Set<() => void>();
  private readonly cpuSamples = new Map<string, { ticks: number; atMs: number }>();
  /** Starts between their first await and the spawn: a second start of the same record must not spawn twice. */
  private readonly starting = new Set<string>();
  private loaded = false;
  private timer: NodeJS.Timeout | null = null;
  private lastLogBound = Date.now();

  constructor(private readonly options: LocalDriverOptions) {
    this.files = new RecordFiles(options.layout.sessions);
    this.log = options.log ?? silentLogger;
  }

  async ping(): Promise<void> {
    this.load();
    if (!existsSync('/proc/self/stat')) throw new EdgeechoError('RUNTIME_UNAVAILABLE', 'the local runtime needs /proc (Linux): /proc/self/stat is missing');
  }

  async createNetwork(spec: NetworkSpec): Promise<NetworkRef> {
    this.load();
    const network: NetworkRecord = { id: newId(), name: spec.name, session: spec.session, labels: spec.labels, created: new Date().toISOString(), endpoints: {} };
    this.files.saveNetwork(network);
    this.networks.set(network.id, network);
    return { id: network.id, name: network.name, subnet: LOCAL_SUBNET };
  }

  async removeNetwork(id: string): Promise<void> {
    this.load();
    const network = this.networks.get(id);
    if (!network) return;
    this.files.removeNetwork(network);
    this.networks.delete(id);
    this.hub.publish({ type: 'network', action: 'destroy', id, session: network.session, ...instanceOf(network.labels) });
  }

  async createContainer(spec: ContainerSpec): Promise<ContainerRef> {
    this.load();
    const network = this.networks.get(spec.network.id);
    if (!network) throw new EdgeechoError('NOT_FOUND', `create process ${spec.name}: network ${spec.network.name} (${spec.network.id}) does not exist`);
    if ([...this.processes.values()].some((p) => p.name === spec.name)) {
      throw new EdgeechoError('CONFLICT', `create process ${spec.name}: the name is already in use`, { name: spec.name });
    }
    const command = spec.command ?? ['node', this.options.layout.script(spec.role)];
    if (!spec.command && !existsSync(command[1]!)) {
      throw new EdgeechoError('RUNTIME_UNAVAILABLE', `the ${spec.role} emulator bundle is missing at ${command[1]}; run \`edgeecho images build --runtime local\` or set EDGEECHO_BUILD_IMAGES=true`);
    }
    const record: ProcessRecord = {
      id: newId(),
      name: spec.name,
      session: spec.session,
      role: spec.role,
      network: network.id,
      labels: spec.labels,
      command,
      env: spec.env,
      memoryBytes: spec.limits.memoryBytes,
      nanoCpus: spec.limits.nanoCpus,
      created: new Date().toISOString(),
      status: 'created',
      process: null,
      startedAt: null,
      finishedAt: null,
      exitCode: null,
      oomKilled: false,
    };
    if (spec.upstream) record.upstream = spec.upstream;
    if (spec.listen) {
      const alias = spec.aliases[0] ?? spec.role;
      const host = spec.publish ? spec.publish.hostIp : '127.0.0.1';
      const endpoint = await this.endpoint(network, alias);
      endpoint.host = host;
      this.files.saveNetwork(network);
      for (const wake of [...this.declared]) wake();
      record.listen = { port: endpoint.port, env: spec.listen.env, alias, host };
      if (spec.publish) record.publish = { host, port: endpoint.port };
    }
    this.files.saveProcess(record);
    this.processes.set(record.id, record);
    return { id: record.id, name: record.name, role: record.role };
  }

  async startContainer(id: string): Promise<void> {
    const record = this.get(id);
    if (record.status === 'running' || this.starting.has(id)) return;
    if (record.status === 'exited') throw new EdgeechoError('CONFLICT', `process ${record.name} has exited; the local runtime does not restart processes`, { container: record.name });
    this.starting.add(id);
    try {
      await this.spawnRecorded(record);
    } finally {
      this.starting.delete(id);
    }
  }

  /** Resolves the role's ports and upstream, spawns it and records its pid before anything else can happen. */
  private async spawnRecorded(record: ProcessRecord): Promise<void> {
    const { id } = record;
    const env = { ...record.env };
    if (record.listen) {
      env[record.listen.env] = String(record.listen.port);
      env.EMULATOR_LISTEN_HOST = record.listen.host;
    }
    if (record.upstream) {
      const network = this.networks.get(record.network);
      if (!network) throw new EdgeechoError('NOT_FOUND', `start process ${record.name}: its network is gone`);
      const upstream = await this.declaredEndpoint(network, record.upstream.alias, record.name);
      env[record.upstream.hostEnv] = WILDCARD.has(upstream.host!) ? '127.0.0.1' : upstream.host!;
      env[record.upstream.portEnv] = String(upstream.port);
    }
    // The record may have been removed while the upstream was awaited (a rollback).
    if (this.processes.get(id) !== record || record.status !== 'created') return;
    for (const kind of ['stdout', 'stderr', 'exit'] as const) rmSync(this.files.file(record, kind), { force: true });
    const child = await spawnRole({
      id,
      session: record.session,
      command: record.command,
      env,
      memoryBytes: record.memoryBytes,
      exitRecorder: this.options.layout.exitRecorder,
      stdoutPath: this.files.file(record, 'stdout'),
      stderrPath: this.files.file(record, 'stderr'),
      exitPath: this.files.file(record, 'exit'),
    });
    // Recorded at once (synchronously): a daemon killed from here on finds the pid at its next start.
    record.process = identityOf(child.pid!) ?? { pid: child.pid!, startTime: -1, bootId: '' };
    record.status = 'running';
    record.startedAt = new Date().toISOString();
    this.files.saveProcess(record);
    this.children.set(id, child);
    child.once('exit', (code, signal) => this.onExit(id, code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0), signal));
    this.hub.publish({ type: 'container', action: 'start', id, session: record.session, role: record.role, ...instanceOf(record.labels) });
    this.ensureTimer();
  }

  async waitReady(id: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ReadyInfo> {
    const record = this.get(id);
    const info = await waitForReadyLine({
      stdoutPath: this.files.file(record, 'stdout'),
      stderrPath: this.files.file(record, 'stderr'),
      name: `process ${record.name}`,
      timeoutMs: options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      exited: this.exited(id),
      onExited: (stderr) => {
        const how = this.processes.has(id) ? `exited with code ${record.exitCode}${record.oomKilled ? ' (killed: out of memory)' : ''}` : 'is gone';
        return new EdgeechoError(
          'INTERNAL',
          `${record.name} (${record.role}) ${how} before printing its ready line${stderr.length ? `; last stderr:\n${stderr.join('\n')}` : '; no stderr output'}`,
          { container: record.name, exit_code: record.exitCode, oom_killed: record.oomKilled, stderr },
        );
      },
    });
    // Only a process still the one started (pid reuse) is reniced.
    if (record.process && isAlive(record.process)) lowerPriority(record.process.pid);
    return info;
  }

  async stopContainer(id: string, timeoutS: number): Promise<void> {
    const record = this.get(id);
    this.refresh(record);
    if (record.status !== 'running') return;
    this.signal(record, 'SIGTERM');
    if (await this.waitExit(id, timeoutS * 1000)) return;
    this.signal(record, 'SIGKILL');
    if (!(await this.waitExit(id, KILL_WAIT_MS))) {
      throw new EdgeechoError('INTERNAL', `process ${record.name} (pid ${record.process?.pid}) still runs ${KILL_WAIT_MS} ms after SIGKILL`, { container: record.name });
    }
  }

  async removeContainer(id: string): Promise<void> {
    this.load();
    const record = this.processes.get(id);
    if (!record) return;
    this.refresh(record);
    if (record.status === 'running') {
      this.signal(record, 'SIGKILL');
      if (!(await this.waitExit(id, KILL_WAIT_MS))) {
        throw new EdgeechoError('INTERNAL', `remove process ${record.name}: pid ${record.process?.pid} still runs ${KILL_WAIT_MS} ms after SIGKILL`, { container: record.name });
      }
    }
    if (this.processes.get(id) !== record) return;
    this.files.removeProcess(record);
    this.processes.delete(id);
    this.cpuSamples.delete(id);
    this.hub.publish({ type: 'container', action: 'destroy', id, session: record.session, role: record.role, ...instanceOf(record.labels) });
  }

  async inspectContainer(id: string): Promise<ContainerState> {
    const record = this.get(id);
    this.refresh(record);
    return stateOf(record);
  }

  async logs(id: string, lines: number): Promise<string> {
    const record = this.get(id);
    const stderr = tailLines(this.files.file(record, 'stderr'), lines);
    const stdout = tailLines(this.files.file(record, 'stdout'), lines);
    // stdout last, as the Docker driver returns it: the stats line is the emulator's last stdout line.
    return stderr ? `${stderr.replace(/\n?$/, '\n')}${stdout}` : stdout;
  }

  async listManaged(): Promise<ManagedObjects> {
    this.load();
    for (const record of this.processes.values()) this.refresh(record);
    return {
      containers: [...this.processes.values()].map(stateOf),
      networks: [...this.networks.values()].map((n) => ({ id: n.id, name: n.name, session: n.session, created: n.created, ...instanceOf(n.labels) })),
    };
  }

  events(options: { since?: number; signal: AbortSignal }): AsyncIterable<RuntimeEvent> {
    this.load();
    return this.hub.follow(options);
  }

  async stats(id: string): Promise<ContainerUsage> {
    const record = this.get(id);
    const pid = record.process?.pid;
    const stat = pid !== undefined && record.status === 'running' ? readProcStat(pid) : null;
    if (!stat || !record.process || stat.startTime !== record.process.startTime) {
      throw new EdgeechoError('NOT_FOUND', `stats of process ${record.name}: it is not running`, { container: record.name });
    }
    const now = Date.now();
    const previous = this.cpuSamples.get(id);
    this.cpuSamples.set(id, { ticks: stat.cpuTicks, atMs: now });
    // First sample: the average since the process started; then the share since the previous sample.
    const seconds = previous ? (now - previous.atMs) / 1000 : uptimeS() - stat.startTime / CLOCK_TICKS_PER_S;
    const ticks = previous ? stat.cpuTicks - previous.ticks : stat.cpuTicks;
    const cpuPercent = seconds > 0 ? (ticks / CLOCK_TICKS_PER_S / seconds) * 100 : 0;
    return { cpuPercent: Math.round(cpuPercent * 100) / 100, memoryBytes: residentBytes(pid!), memoryLimitBytes: record.memoryBytes };
  }

  /** Stops the /proc watch timer (the daemon's close; running processes keep running, to be adopted). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  // ---- records, exits, adoption ----

  private get(id: string): ProcessRecord {
    this.load();
    const record = this.processes.get(id);
    if (!record) throw new EdgeechoError('NOT_FOUND', `no such process: ${id}`, { container: id });
    return record;
  }

  /**
   * Reads what the last run left (once): processes still alive (same pid, start time and boot) are adopted and
   * watched through /proc; those gone meanwhile are marked exited with the code their exit recorder left; a
   * process started just before a crash recorded its pid is found by the marker on its command line.
   */
  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    mkdirSync(this.options.layout.sessions, { recursive: true, mode: 0o750 });
    const { networks, processes } = this.files.loadAll((file, err) => this.log.warn({ file, err: err.message }, 'unreadable local runtime record; ignored'));
    for (const n of networks) this.networks.set(n.id, n);
    for (const record of processes) {
      this.processes.set(record.id, record);
      if (record.status === 'created') {
        const pid = findMarked(record.id).find((p) => readProcStat(p)?.state !== 'Z');
        const identity = pid !== undefined ? identityOf(pid) : null;
        if (identity) {
          record.process = identity;
          record.status = 'running';
          record.startedAt = new Date().toISOString();
          this.files.saveProcess(record);
          this.log.warn({ container: record.name, pid }, 'found a process started just before the daemon stopped; adopting it');
        }
      }
      if (record.status === 'running') {
        this.refresh(record);
        if (record.status === 'running') this.log.info({ container: record.name, pid: record.process?.pid }, 'adopted a running process');
      }
    }
    this.ensureTimer();
  }

  /** A running record whose process is gone (not our child, or its exit not yet delivered) is marked exited. */
  private refresh(record: ProcessRecord): void {
    if (record.status !== 'running' || this.children.has(record.id)) return;
    if (record.process && isAlive(record.process)) return;
    const exitFile = this.files.file(record, 'exit');
    let code: number | null = null;
    let finishedAt = new Date();
    try {
      code = Number(readFileSync(exitFile, 'utf8').trim());
      finishedAt = statSync(exitFile).mtime;
      if (!Number.isInteger(code)) code = null;
    } catch {
      // Killed by a signal while not our child: no code was left, and none is made up.
    }
    this.onExit(record.id, code, null, finishedAt);
  }

  private onExit(id: string, code: number | null, signal: NodeJS.Signals | null, at = new Date()): void {
    this.children.delete(id);
    const record = this.processes.get(id);
    if (record && record.status === 'running') {
      record.status = 'exited';
      record.exitCode = code;
      record.finishedAt = at.toISOString();
      // V8 dies by a signal (SIGABRT or SIGTRAP) on heap exhaustion: the local counterpart of Docker's OOM kill.
      record.oomKilled = (signal !== null || (code ?? 0) > 128) && /heap limit|heap out of memory|javascript OOM/i.test(readTail(this.files.file(record, 'stderr'), 8192));
      try {
        this.files.saveProcess(record);
      } catch (err) {
        this.log.warn({ container: record.name, err: (err as Error).message }, 'could not record the exit');
      }
      const event: Omit<RuntimeEvent, 'timeNano'> = { type: 'container', action: 'die', id, session: record.session, role: record.role, ...instanceOf(record.labels) };
      if (code !== null) event.exitCode = code;
      this.hub.publish(event);
      if (record.oomKilled) this.hub.publish({ type: 'container', action: 'oom', id, session: record.session, role: record.role, ...instanceOf(record.labels) });
    }
    const waiters = this.exitWaiters.get(id);
    this.exitWaiters.delete(id);
    for (const wake of waiters ?? []) wake();
  }

  /** Settles once the process is not running (or its record is gone). */
  private exited(id: string): Promise<void> {
    const record = this.processes.get(id);
    if (!record || record.status === 'exited') return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.exitWaiters.get(id);
      if (!set) this.exitWaiters.set(id, (set = new Set()));
      set.add(resolve);
    });
  }

  private async waitExit(id: string, timeoutMs: number): Promise<boolean> {
    const record = this.processes.get(id);
    if (!record || record.status !== 'running') return true;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const done = await Promise.race([this.exited(id).then(() => true as const), late]);
    clearTimeout(timer);
    return done;
  }

  /** Signals the process group, only when the pid is still the process this runtime started (pid reuse). */
  private signal(record: ProcessRecord, signal: NodeJS.Signals): void {
    const who = record.process;
    if (!who || !isAlive(who)) {
      this.refresh(record);
      return;
    }
    try {
      process.kill(-who.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw new EdgeechoError('INTERNAL', `cannot signal process ${record.name} (pid ${who.pid}): ${(err as Error).message}`);
    }
  }

  /** Watches adopted processes through /proc and bounds log files, while any process runs. */
  private ensureTimer(): void {
    if (this.timer) return;
    const running = (): ProcessRecord[] => [...this.processes.values()].filter((p) => p.status === 'running');
    if (running().length === 0) return;
    this.timer = setInterval(() => {
      const live = running();
      for (const record of live) this.refresh(record);
      if (Date.now() - this.lastLogBound >= (this.options.logBoundEveryMs ?? LOG_BOUND_EVERY_MS)) {
        this.lastLogBound = Date.now();
        for (const record of live) for (const kind of ['stdout', 'stderr'] as const) boundFile(this.files.file(record, kind), this.options.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES);
      }
      if (!live.some((p) => p.status === 'running')) this.close();
    }, this.options.adoptedWatchMs ?? DEFAULT_ADOPTED_WATCH_MS);
    this.timer.unref();
  }

  // ---- endpoints: the session network's "DNS" ----

  /** The alias's endpoint, allocating its port at the first ask (the listener's create or a downstream's start). */
  private endpoint(network: NetworkRecord, alias: string): Promise<Endpoint> {
    const existing = network.endpoints[alias];
    if (existing) return Promise.resolve(existing);
    const key = `${network.id}/${alias}`;
    let pending = this.pendingPorts.get(key);
    if (!pending) {
      pending = this.ports
        .allocate(this.portsTaken())
        .then((port) => {
          const endpoint = network.endpoints[alias] ?? { port };
          network.endpoints[alias] = endpoint;
          this.files.saveNetwork(network);
          return endpoint;
        })
        .finally(() => this.pendingPorts.delete(key));
      this.pendingPorts.set(key, pending);
    }
    return pending;
  }

  /** Ports of every session network this driver knows (live ones: removed networks are forgotten). */
  private portsTaken(): Set<number> {
    const taken = new Set<number>();
    for (const network of this.networks.values()) for (const endpoint of Object.values(network.endpoints)) taken.add(endpoint.port);
    return taken;
  }

  /** The upstream's endpoint once its listener was created (it sets the host), within UPSTREAM_WAIT_MS. */
  private async declaredEndpoint(network: NetworkRecord, alias: string, who: string): Promise<Endpoint> {
    const endpoint = await this.endpoint(network, alias);
    if (endpoint.host !== undefined) return endpoint;
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        if (endpoint.host === undefined) return;
        clearTimeout(timer);
        this.declared.delete(wake);
        resolve();
      };
      const timer = setTimeout(() => {
        this.declared.delete(wake);
        resolve();
      }, UPSTREAM_WAIT_MS);
      this.declared.add(wake);
    });
    if (endpoint.host === undefined) {
      throw new EdgeechoError('NOT_FOUND', `start process ${who}: no role with alias "${alias}" was created in network ${network.name} within ${UPSTREAM_WAIT_MS} ms`);
    }
    return endpoint;
  }
}

function stateOf(record: ProcessRecord): ContainerState {
  const state: ContainerState = {
    id: record.id,
    name: record.name,
    role: record.role,
    session: record.session,
    running: record.status === 'running',
    status: record.status,
    exitCode: record.exitCode,
    oomKilled: record.oomKilled,
    startedAt: record.startedAt,
    finishedAt: record.finishedAt,
    created: record.created,
    ...instanceOf(record.labels),
  };
  // As Docker shows it: the published port only while the process runs.
  if (record.publish && record.status === 'running') state.published = { ...record.publish };
  return state;
}

/** The io.edgeecho.instance label, as Docker's listings report it (the instance scope filters on it). */
function instanceOf(labels: Record<string, string>): { instance?: string } {
  const instance = labels[LABEL_INSTANCE];
  return instance ? { instance } : {};
}

function newId(): string {
  return randomBytes(16).toString('hex');
}

/**
 * Samples what the node has and what sessions use, on EDGEECHO_RESOURCES_CRON: host CPU (deltas of /proc/stat),
 * memory (MemAvailable), load, free disk of the data directory, and from the runtime each running session's
 * CPU and memory (container stats summed per session). The latest sample answers the `resources` op and
 * feeds admission's free-memory check. Readers are injectable so tests need neither /proc nor Docker.
 * Fields are camelCase here, like all TypeScript; the `resources` op (src/ops/resource-ops.ts) spells them
 * snake_case on the wire, so rename there too when a field is added.
 */
import { readFile, statfs } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import type { Logger } from 'pino';
import type { ObjectCount, RuntimeDriver } from '../runtime/driver.js';
import { cronScheduler, type ScheduledJob, type Scheduler } from '../scheduler.js';

export interface HostReaders {
  procStat(): Promise<string>;
  meminfo(): Promise<string>;
  loadavg(): [number, number, number];
  statfs(path: string): Promise<{ bsize: number; blocks: number; bavail: number }>;
  cpuCount(): number;
}

export const procReaders: HostReaders = {
  procStat: () => readFile('/proc/stat', 'utf8'),
  meminfo: () => readFile('/proc/meminfo', 'utf8'),
  loadavg: () => loadavg() as [number, number, number],
  statfs: (path) => statfs(path),
  cpuCount: () => cpus().length,
};

export interface HostSnapshot {
  cpus: number;
  /** Busy share of all cores since the previous sample, 0..100; null on the first sample. */
  cpuPercent: number | null;
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
  load: [number, number, number];
  dataDir: string;
  diskFreeBytes: number | null;
  diskTotalBytes: number | null;
}

export interface EngineSnapshot {
  name: string;
  reachable: boolean;
  /** This instance's labelled containers running / present, and its networks. */
  running: number;
  containers: number;
  networks: number;
  /** Objects of other instances: host usage like any process, but neither this daemon's sessions nor its reservations. */
  foreign: ObjectCount;
  /** Objects of no instance (edgeecho before instances) that no record here claims: left alone. */
  unlabelled: ObjectCount;
  error?: string;
}

export interface SessionUsage {
  session: string;
  containers: number;
  /** Summed over the session's containers; 100 = one core. */
  cpuPercent: number;
  memoryBytes: number;
  memoryLimitBytes: number;
}

export interface ResourceSnapshot {
  /** ms since the epoch */
  at: number;
  host: HostSnapshot;
  engine: EngineSnapshot;
  sessions: SessionUsage[];
}

interface CpuTimes {
  total: number;
  idle: number;
}

/** The aggregate `cpu` line: user nice system idle iowait irq softirq steal (guest time is inside user). */
export function parseProcStat(text: string): CpuTimes {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat: expected a "cpu " line, found none');
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isFinite(n))) throw new Error(`/proc/stat: expected numeric cpu times, got "${line}"`);
  const total = f.reduce((a, b) => a + b, 0);
  return { total, idle: f[3]! + (f[4] ?? 0) };
}

/** MemTotal and MemAvailable in bytes (the kernel reports kB). */
export function parseMeminfo(text: string): { total: number; available: number } {
  const read = (key: string): number | null => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s*kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  const total = read('MemTotal');
  // Kernels before 3.14 lack MemAvailable; free + cached is the old approximation.
  const available = read('MemAvailable') ?? ((read('MemFree') ?? 0) + (read('Cached') ?? 0));
  return { total: total ?? totalmem(), available };
}

export interface TrackerOptions {
  driver: Pick<RuntimeDriver, 'name' | 'listManaged' | 'stats'>;
  dataDir: string;
  cron: string;
  log: Logger;
  readers?: HostReaders;
  scheduler?: Scheduler;
  now?: () => number;
  /**
   * Sessions whose containers get no stats call: parked ones block on a pipe read and `resources` lists them under
   * pool only, while each stats call costs the engine two cgroup readings a second apart (two full pools of 10:
   * about 300 ms of engine CPU per sample, in two bursts that took the CPU from claims landing on them).
   */
  unsampled?: (session: string) => boolean;
  /** Awaited before a scheduled sample (the warm pools' claims under way: a sample is engine work not on their path). */
  beforeScheduled?: () => Promise<void>;
}

export class ResourceTracker {
  private readonly readers: HostReaders;
  private readonly now: () => number;
  private previousCpu: CpuTimes | null = null;
  private current: ResourceSnapshot | null = null;
  private inFlight: Promise<ResourceSnapshot> | null = null;
  /** Per-session figures taken between full samples (at ready; null: ended), kept over a full sample that began before them. */
  private readonly newer = new Map<string, { at: number; usage: SessionUsage | null }>();
  private job: ScheduledJob | null = null;

  constructor(private readonly options: TrackerOptions) {
    this.readers = options.readers ?? procReaders;
    this.now = options.now ?? Date.now;
  }

  /** Takes a first sample (the CPU baseline) and schedules the rest. */
  async start(): Promise<ResourceSnapshot> {
    if (!this.job) {
      const scheduler = this.options.scheduler ?? cronScheduler;
      this.job = scheduler(this.options.cron, 'edgeecho-resources', () => {
        const ready = this.options.beforeScheduled?.() ?? Promise.resolve();
        ready.then(() => this.sample()).catch((err: Error) => this.options.log.warn({ err: err.message }, 'resource sample failed'));
      });
    }
    return this.sample();
  }

  stop(): void {
    this.job?.cancel();
    this.job = null;
  }

  latest(): ResourceSnapshot | null {
    return this.current;
  }

  /** Host available memory as of the latest sample; null before the first. */
  availableMemory(): number | null {
    return this.current?.host.memoryAvailableBytes ?? null;
  }

  /** One sample now; a sample already running is joined, not doubled (stats calls are slow under load). */
  sample(): Promise<ResourceSnapshot> {
    this.inFlight ??= this.takeSample().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  /** A sample that began after this call: one already running listed the runtime too early to be "fresh". */
  async sampleFresh(): Promise<ResourceSnapshot> {
    await this.inFlight?.catch(() => undefined);
    return this.sample();
  }

  /**
   * Samples one session's containers now and puts its usage into the latest snapshot (a session that just turned
   * ready would otherwise show none until the next scheduled sample).
   */
  async sampleSession(session: string): Promise<SessionUsage | undefined> {
    return (await this.sampleSessions([session])).get(session);
  }

  /** sampleSession for several sessions with one listing of the runtime (those of a burst turn ready together). */
  async sampleSessions(sessions: readonly string[]): Promise<Map<string, SessionUsage | undefined>> {
    const at = this.now();
    const wanted = new Set(sessions);
    const managed = await this.options.driver.listManaged();
    const bySession = await this.usageBySession(managed.containers.filter((c) => c.session !== undefined && wanted.has(c.session) && c.running));
    const out = new Map<string, SessionUsage | undefined>();
    for (const session of wanted) {
      const usage = bySession.get(session);
      // An end seen meanwhile wins over this reading.
      if ((this.newer.get(session)?.at ?? -Infinity) < at) this.note(session, at, usage ?? null);
      out.set(session, usage);
    }
    return out;
  }

  /** Drops a finished session from the latest snapshot: it uses nothing now, and its last figures would read as current. */
  forget(session: string): void {
    this.note(session, this.now(), null);
  }

  private note(session: string, at: number, usage: SessionUsage | null): void {
    this.newer.set(session, { at, usage });
    if (this.current) this.current = { ...this.current, sessions: this.withNewer(this.current.sessions) };
  }

  private async takeSample(): Promise<ResourceSnapshot> {
    const began = this.now();
    const [host, runtime] = await Promise.all([this.sampleHost(), this.sampleRuntime()]);
    for (const [session, { at }] of this.newer) if (at < began) this.newer.delete(session);
    const snapshot: ResourceSnapshot = { at: began, host, ...runtime, sessions: this.withNewer(runtime.sessions) };
    this.current = snapshot;
    return snapshot;
  }

  private withNewer(sessions: SessionUsage[]): SessionUsage[] {
    if (this.newer.size === 0) return sessions;
    const merged = new Map(sessions.map((s) => [s.session, s]));
    for (const [session, { usage }] of this.newer) {
      if (usage) merged.set(session, usage);
      else merged.delete(session);
    }
    return [...merged.values()].sort((a, b) => a.session.localeCompare(b.session));
  }

  private async sampleHost(): Promise<HostSnapshot> {
    const r = this.readers;
    const [stat, mem, disk] = await Promise.all([
      r.procStat().then(parseProcStat),
      r.meminfo().then(parseMeminfo),
      r.statfs(this.options.dataDir).catch(() => null),
    ]);
    let cpuPercent: number | null = null;
    if (this.previousCpu) {
      const total = stat.total - this.previousCpu.total;
      const idle = stat.idle - this.previousCpu.idle;
      cpuPercent = total > 0 ? round(Math.min(100, Math.max(0, (1 - idle / total) * 100))) : 0;
    }
    this.previousCpu = stat;
    return {
      cpus: r.cpuCount(),
      cpuPercent,
      memoryTotalBytes: mem.total,
      memoryAvailableBytes: mem.available,
      load: r.loadavg().map(round) as [number, number, number],
      dataDir: this.options.dataDir,
      diskFreeBytes: disk ? disk.bavail * disk.bsize : null,
      diskTotalBytes: disk ? disk.blocks * disk.bsize : null,
    };
  }

  private async sampleRuntime(): Promise<{ engine: EngineSnapshot; sessions: SessionUsage[] }> {
    const { driver } = this.options;
    let managed;
    try {
      managed = await driver.listManaged();
    } catch (err) {
      const none = { containers: 0, running: 0, networks: 0 };
      return { engine: { name: driver.name, reachable: false, running: 0, containers: 0, networks: 0, foreign: none, unlabelled: { ...none }, error: (err as Error).message }, sessions: [] };
    }
    const running = managed.containers.filter((c) => c.running);
    const unsampled = this.options.unsampled;
    const sampled = unsampled ? running.filter((c) => c.session === undefined || !unsampled(c.session)) : running;
    this.options.log.debug({ running: running.length, sampled: sampled.length }, 'sampling runtime usage');
    const bySession = await this.usageBySession(sampled);
    return {
      engine: {
        name: driver.name,
        reachable: true,
        running: running.length,
        containers: managed.containers.length,
        networks: managed.networks.length,
        foreign: managed.outside?.foreign ?? { containers: 0, running: 0, networks: 0 },
        unlabelled: managed.outside?.unlabelled ?? { containers: 0, running: 0, networks: 0 },
      },
      sessions: [...bySession.values()].sort((a, b) => a.session.localeCompare(b.session)),
    };
  }

  /** CPU and memory per session, summed over the given containers (one stats call each). */
  private async usageBySession(containers: ReadonlyArray<{ id: string; session?: string }>): Promise<Map<string, SessionUsage>> {
    const bySession = new Map<string, SessionUsage>();
    const usages = await Promise.all(
      containers.map(async (c) => {
        try {
          return { container: c, usage: await this.options.driver.stats(c.id) };
        } catch {
          // Exited between the list and the stats call: not running, so it uses nothing.
          return null;
        }
      }),
    );
    for (const entry of usages) {
      if (!entry || !entry.container.session) continue;
      const s = bySession.get(entry.container.session) ?? { session: entry.container.session, containers: 0, cpuPercent: 0, memoryBytes: 0, memoryLimitBytes: 0 };
      s.containers++;
      s.cpuPercent = round(s.cpuPercent + entry.usage.cpuPercent);
      s.memoryBytes += entry.usage.memoryBytes;
      s.memoryLimitBytes += entry.usage.memoryLimitBytes;
      bySession.set(s.session, s);
    }
    return bySession;
  }
}

const round = (n: number): number => Math.round(n * 100) / 100;

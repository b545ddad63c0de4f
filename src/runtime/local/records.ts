/**
 * The local runtime's state under the data dir, the counterpart of what the Docker engine remembers: one
 * directory per session ("network") holding network.json and, per role, <role>.json (the process record: pid,
 * start time, ports, exit) beside its stdout, stderr and exit-code files. Written with write-then-rename, so a
 * kill -9 of the daemon leaves either the old or the new record, never half of one; read back at start to adopt.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Role } from '../driver.js';
import type { ProcessIdentity } from './proc.js';

export interface Endpoint {
  port: number;
  /** Where the role listens; absent until the listening role is created. */
  host?: string;
}

export interface NetworkRecord {
  id: string;
  name: string;
  session: string;
  labels: Record<string, string>;
  created: string;
  /** Ports by alias: the role's "DNS name" on this network resolves to loopback and this port. */
  endpoints: Record<string, Endpoint>;
}

export interface ProcessRecord {
  id: string;
  name: string;
  session: string;
  role: Role;
  network: string;
  labels: Record<string, string>;
  /** What runs: the executable and its arguments (the bundle path, or a test's command). */
  command: string[];
  /** The spec's env, before the runtime resolves ports and upstream hosts at start. */
  env: Record<string, string>;
  listen?: { port: number; env: string; alias: string; host: string };
  upstream?: { alias: string; hostEnv: string; portEnv: string };
  publish?: { host: string; port: number };
  memoryBytes: number;
  nanoCpus: number;
  created: string;
  status: 'created' | 'running' | 'exited';
  process: ProcessIdentity | null;
  startedAt: string | null;
  finishedAt: string | null;
  exitCode: number | null;
  oomKilled: boolean;
}

export class RecordFiles {
  constructor(readonly root: string) {}

  sessionDir(session: string): string {
    return join(this.root, session);
  }

  file(record: { session: string; role: Role }, kind: 'json' | 'stdout' | 'stderr' | 'exit'): string {
    return join(this.sessionDir(record.session), `${record.role}.${kind}`);
  }

  saveNetwork(network: NetworkRecord): void {
    mkdirSync(this.sessionDir(network.session), { recursive: true, mode: 0o750 });
    atomicWrite(join(this.sessionDir(network.session), 'network.json'), network);
  }

  saveProcess(record: ProcessRecord): void {
    mkdirSync(this.sessionDir(record.session), { recursive: true, mode: 0o750 });
    atomicWrite(this.file(record, 'json'), record);
  }

  removeProcess(record: ProcessRecord): void {
    for (const kind of ['json', 'stdout', 'stderr', 'exit'] as const) rmSync(this.file(record, kind), { force: true });
  }

  /** Removes the network record, and the session's directory once no process record is left in it. */
  removeNetwork(network: NetworkRecord): void {
    const dir = this.sessionDir(network.session);
    rmSync(join(dir, 'network.json'), { force: true });
    if (existsSync(dir) && !readdirSync(dir).some((f) => f.endsWith('.json'))) rmSync(dir, { recursive: true, force: true });
  }

  /** Every record on disk; unreadable files are reported, not fatal (a torn tmp file is skipped by design). */
  loadAll(onBad: (file: string, err: Error) => void): { networks: NetworkRecord[]; processes: ProcessRecord[] } {
    const networks: NetworkRecord[] = [];
    const processes: ProcessRecord[] = [];
    if (!existsSync(this.root)) return { networks, processes };
    for (const session of readdirSync(this.root)) {
      const dir = join(this.root, session);
      let files: string[];
      try {
        files = readdirSync(dir);
      } catch {
        continue;
      }
      for (const f of files.filter((name) => name.endsWith('.json'))) {
        try {
          const value = JSON.parse(readFileSync(join(dir, f), 'utf8')) as NetworkRecord | ProcessRecord;
          if (f === 'network.json') networks.push(value as NetworkRecord);
          else processes.push(value as ProcessRecord);
        } catch (err) {
          onBad(join(dir, f), err as Error);
        }
      }
    }
    return { networks, processes };
  }
}

function atomicWrite(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(value), { mode: 0o640 });
  renameSync(tmp, path);
}

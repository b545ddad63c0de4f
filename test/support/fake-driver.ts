/** A RuntimeDriver in memory: records calls, fails on demand, holds ready lines until released. */
import { EdgeechoError } from '../../protocol/errors.js';
import type { ContainerRef, ContainerSpec, ContainerState, ContainerUsage, ManagedObjects, NetworkRef, NetworkSpec, ReadyInfo, RuntimeDriver, RuntimeEvent } from '../../src/runtime/driver.js';

export class FakeDriver implements RuntimeDriver {
  readonly name = 'fake';
  calls: string[] = [];
  networks = new Map<string, NetworkSpec & { id: string }>();
  containers = new Map<string, ContainerSpec & { id: string; running: boolean; exitCode: number | null }>();
  /** `call:role-or-name` -> error, e.g. 'createContainer:stream' */
  failures = new Map<string, Error>();
  /** When set, waitReady waits for this promise (or the signal) before answering. */
  readyGate: Promise<void> | null = null;
  private next = 1;

  private maybeFail(key: string): void {
    const err = this.failures.get(key);
    if (err) throw err;
  }

  async ping(): Promise<void> {}
  async createNetwork(spec: NetworkSpec): Promise<NetworkRef> {
    this.calls.push(`createNetwork ${spec.name}`);
    this.maybeFail('createNetwork');
    const id = `net${this.next++}`;
    this.networks.set(id, { ...spec, id });
    return { id, name: spec.name, subnet: '10.0.0.0/28' };
  }
  async removeNetwork(id: string): Promise<void> {
    this.calls.push(`removeNetwork ${this.networks.get(id)?.name ?? id}`);
    this.networks.delete(id);
  }
  async createContainer(spec: ContainerSpec): Promise<ContainerRef> {
    this.calls.push(`createContainer ${spec.role}`);
    this.maybeFail(`createContainer:${spec.role}`);
    const id = `c${this.next++}-${spec.role}`;
    this.containers.set(id, { ...spec, id, running: false, exitCode: null });
    return { id, name: spec.name, role: spec.role };
  }
  async startContainer(id: string): Promise<void> {
    const c = this.get(id);
    this.calls.push(`startContainer ${c.role}`);
    this.maybeFail(`startContainer:${c.role}`);
    c.running = true;
  }
  async waitReady(id: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ReadyInfo> {
    const c = this.get(id);
    this.calls.push(`waitReady ${c.role}`);
    if (this.readyGate) {
      await new Promise<void>((resolve, reject) => {
        options.signal?.addEventListener('abort', () => reject(new EdgeechoError('CANCELLED', 'cancelled')), { once: true });
        this.readyGate!.then(resolve);
      });
    }
    this.maybeFail(`waitReady:${c.role}`);
    if (c.role === 'probe') return { event: 'ready', role: 'probe', port: 7000, probe_id: c.session, count: Number(c.env.PROBE_COUNT) };
    return { event: 'ready', role: c.role };
  }
  async stopContainer(id: string): Promise<void> {
    this.calls.push(`stopContainer ${this.get(id).role}`);
    const c = this.get(id);
    c.running = false;
    c.exitCode = 0;
  }
  async removeContainer(id: string): Promise<void> {
    this.calls.push(`removeContainer ${this.containers.get(id)?.role ?? id}`);
    this.containers.delete(id);
  }
  async inspectContainer(id: string): Promise<ContainerState> {
    const c = this.get(id);
    const state: ContainerState = { id, name: c.name, role: c.role, session: c.session, running: c.running, status: c.running ? 'running' : 'exited', exitCode: c.exitCode, oomKilled: false, startedAt: null, finishedAt: null };
    // As Docker: an exited container no longer shows its published port.
    if (c.publish && c.running) state.published = { host: c.publish.hostIp, port: 49153 };
    return state;
  }
  async logs(id: string): Promise<string> {
    const c = this.get(id);
    return `{"event":"ready"}\n{"event":"stats","role":"${c.role}","frames":${c.env.PROBE_COUNT ?? 0},"lost":0}\n`;
  }
  async listManaged(): Promise<ManagedObjects> {
    return {
      containers: await Promise.all([...this.containers.keys()].map((id) => this.inspectContainer(id))),
      networks: [...this.networks.values()].map((n) => ({ id: n.id, name: n.name, session: n.session, created: '' })),
    };
  }
  async *events(): AsyncIterable<RuntimeEvent> {}
  async stats(): Promise<ContainerUsage> {
    return { cpuPercent: 0, memoryBytes: 0, memoryLimitBytes: 0 };
  }
  private get(id: string) {
    const c = this.containers.get(id);
    if (!c) throw new EdgeechoError('NOT_FOUND', `no container ${id}`);
    return c;
  }
}

/**
 * One daemon's view of a shared runtime. Several daemons may drive one Docker engine (a second operator, a
 * staging instance, `npm test` on a production node); each labels what it creates io.edgeecho.instance=<its id>,
 * and the reaper, sweep, reconcile, teardown and the resource tracker all see the engine through this scope, so
 * none of them can judge, count or remove another instance's objects. The filtering is done here, once, rather
 * than in each of them.
 *
 * Objects made before instances existed carry no instance label. Those whose session this daemon's records know
 * (`adopted`, found once at start-up: Docker cannot relabel a container) are its own; the rest belong to whoever
 * made them and are only counted, never touched.
 */
import {
  LABEL_INSTANCE,
  type ContainerRef,
  type ContainerSpec,
  type ContainerState,
  type ContainerUsage,
  type ManagedNetwork,
  type ManagedObjects,
  type NetworkRef,
  type NetworkSpec,
  type ObjectCount,
  type ReadyInfo,
  type RuntimeDriver,
  type RuntimeEvent,
} from './driver.js';

export type Owner = 'own' | 'foreign' | 'unlabelled';

export interface InstanceScopeOptions {
  instance: string;
  /** Sessions of unlabelled objects this daemon's records claim (objects of the version before instances). */
  adopted?: ReadonlySet<string>;
}

/** Whose object this is, seen from `scope`. */
export function ownerOf(object: { instance?: string; session?: string }, scope: InstanceScopeOptions): Owner {
  if (object.instance === undefined) return object.session !== undefined && scope.adopted?.has(object.session) ? 'own' : 'unlabelled';
  return object.instance === scope.instance ? 'own' : 'foreign';
}

/** Splits a full listing into this instance's objects and a count of the others. */
export function partition(all: ManagedObjects, scope: InstanceScopeOptions): Required<ManagedObjects> {
  const count = (): ObjectCount => ({ containers: 0, running: 0, networks: 0 });
  const outside = { foreign: count(), unlabelled: count() };
  const containers: ContainerState[] = [];
  const networks: ManagedNetwork[] = [];
  for (const c of all.containers) {
    const owner = ownerOf(c, scope);
    if (owner === 'own') containers.push(c);
    else {
      outside[owner].containers++;
      if (c.running) outside[owner].running++;
    }
  }
  for (const n of all.networks) {
    const owner = ownerOf(n, scope);
    if (owner === 'own') networks.push(n);
    else outside[owner].networks++;
  }
  return { containers, networks, outside };
}

export class InstanceScope implements RuntimeDriver {
  readonly instance: string;
  /** Present exactly when the wrapped runtime can unpark (warm pools check for it). */
  readonly unpark?: RuntimeDriver['unpark'];
  /** Present exactly when the wrapped runtime has nodes to place sessions on (the workflow checks for them). */
  readonly place?: RuntimeDriver['place'];
  readonly unplace?: RuntimeDriver['unplace'];
  readonly nodes?: RuntimeDriver['nodes'];

  constructor(
    private readonly inner: RuntimeDriver,
    private readonly scope: InstanceScopeOptions,
  ) {
    this.instance = scope.instance;
    if (inner.unpark) this.unpark = (id, parameters, options) => inner.unpark!(id, parameters, options);
    // Nodes are shared by every instance: what others placed there counts against the room left.
    if (inner.place) this.place = (request, signal) => inner.place!(request, signal);
    if (inner.unplace) this.unplace = (session) => inner.unplace!(session);
    if (inner.nodes) this.nodes = () => inner.nodes!();
  }

  get name(): string {
    return this.inner.name;
  }

  async listManaged(): Promise<ManagedObjects> {
    return partition(await this.inner.listManaged(), this.scope);
  }

  async *events(options: { since?: number; signal: AbortSignal }): AsyncIterable<RuntimeEvent> {
    for await (const event of this.inner.events(options)) {
      if (ownerOf(event, this.scope) === 'own') yield event;
    }
  }

  createNetwork(spec: NetworkSpec, signal?: AbortSignal): Promise<NetworkRef> {
    return this.inner.createNetwork({ ...spec, labels: this.labelled(spec.labels) }, signal);
  }

  createContainer(spec: ContainerSpec, signal?: AbortSignal): Promise<ContainerRef> {
    return this.inner.createContainer({ ...spec, labels: this.labelled(spec.labels) }, signal);
  }

  // By id: the ids come from this scope's listings and this daemon's records, never from another instance.
  ping(signal?: AbortSignal): Promise<void> {
    return this.inner.ping(signal);
  }
  removeNetwork(id: string): Promise<void> {
    return this.inner.removeNetwork(id);
  }
  startContainer(id: string, signal?: AbortSignal): Promise<void> {
    return this.inner.startContainer(id, signal);
  }
  waitReady(id: string, options: { timeoutMs: number; signal?: AbortSignal; parked?: boolean }): Promise<ReadyInfo> {
    return this.inner.waitReady(id, options);
  }
  stopContainer(id: string, timeoutS: number): Promise<void> {
    return this.inner.stopContainer(id, timeoutS);
  }
  removeContainer(id: string): Promise<void> {
    return this.inner.removeContainer(id);
  }
  inspectContainer(id: string): Promise<ContainerState> {
    return this.inner.inspectContainer(id);
  }
  logs(id: string, tailLines: number): Promise<string> {
    return this.inner.logs(id, tailLines);
  }
  stats(id: string): Promise<ContainerUsage> {
    return this.inner.stats(id);
  }

  /** The instance label last, so no extra label (EDGEECHO_OBJECT_LABELS) can put an object in another instance. */
  private labelled(labels: Record<string, string>): Record<string, string> {
    return { ...labels, [LABEL_INSTANCE]: this.scope.instance };
  }
}

export interface LegacyClaim {
  /** Sessions whose unlabelled objects this daemon's records claim: its own from now on. */
  adopted: Set<string>;
  /** Names of unlabelled objects no record claims: another daemon's (or nobody's), left alone. */
  unclaimed: { containers: string[]; networks: string[] };
}

/**
 * Sorts the unlabelled objects of a full listing (made by edgeecho before instances) by whether this daemon's
 * records know their session. Read once at start-up: every object made from then on carries an instance label.
 */
export function claimLegacy(all: ManagedObjects, known: (session: string) => boolean): LegacyClaim {
  const claim: LegacyClaim = { adopted: new Set(), unclaimed: { containers: [], networks: [] } };
  const sort = (o: { instance?: string; session?: string; name: string }, names: string[]): void => {
    if (o.instance !== undefined) return;
    if (o.session !== undefined && known(o.session)) claim.adopted.add(o.session);
    else names.push(o.name);
  };
  for (const c of all.containers) sort(c, claim.unclaimed.containers);
  for (const n of all.networks) sort(n, claim.unclaimed.networks);
  return claim;
}

/**
 * Session networks with explicit subnets cut from EDGEECHO_SUBNET_POOL, on one engine: bridges for the Docker
 * runtime, attachable overlays for the swarm runtime (whose manager lists the swarm's networks too). The engine
 * is the authority on what is taken: its networks are read before the first allocation and again whenever it
 * answers "Pool overlaps" (another daemon took the subnet meanwhile).
 */
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { EdgeechoError } from '../../../protocol/errors.js';
import { LABEL_INSTANCE, LABEL_MANAGED, LABEL_SESSION, type ManagedNetwork, type NetworkRef, type NetworkSpec } from '../driver.js';
import { dockerMessage, isStatus, mapDockerError } from './errors.js';
import { SubnetPool } from './subnets.js';

const POOL_OVERLAP = /pool overlaps|overlaps with other one|networks have overlapping/i;
/**
 * Creates in a row answered "Pool overlaps" before giving up. Each one re-reads the engine's networks, so only
 * other daemons creating networks at that very moment can cause the next; this many in a row means something
 * else is wrong.
 */
export const MAX_SUBNET_ATTEMPTS = 16;

export class SessionNetworks {
  private subnetsLoaded: Promise<void> | null = null;
  /** Subnets of the networks made here, by network id. */
  private readonly madeSubnets = new Map<string, string>();
  /** Subnets of every network on the engine at the last look, by network id. */
  private readonly engineSubnets = new Map<string, string>();

  constructor(
    private readonly docker: Docker,
    readonly subnets: SubnetPool,
    private readonly log: Logger,
  ) {}

  /** Creates the network `options(subnet)` describes with the next free subnet. */
  async create(spec: NetworkSpec, options: (subnet: string) => Record<string, unknown>): Promise<NetworkRef> {
    await this.loadSubnets();
    for (let attempt = 1; attempt <= MAX_SUBNET_ATTEMPTS; attempt++) {
      const subnet = await this.allocateSubnet();
      try {
        const network = await this.docker.createNetwork(options(subnet) as unknown as Docker.NetworkCreateOptions);
        this.madeSubnets.set(network.id, subnet);
        return { id: network.id, name: spec.name, subnet };
      } catch (err) {
        this.subnets.release(subnet);
        if (!POOL_OVERLAP.test(dockerMessage(err))) throw mapDockerError(err, `create network ${spec.name}`);
        // Another daemon took it since the last look: look again, so the next pick avoids all it made meanwhile.
        this.log.debug({ subnet, network: spec.name, attempt }, "subnet taken outside this daemon; reading the engine's networks again");
        await this.refreshSubnets();
      }
    }
    throw new EdgeechoError(
      'RESOURCE_EXHAUSTED',
      `${MAX_SUBNET_ATTEMPTS} subnets of ${this.subnets.pool} in a row overlapped networks created meanwhile outside this daemon, for ${spec.name}; other processes on this engine may be using the same pool: give each daemon its own EDGEECHO_SUBNET_POOL`,
      { pool: this.subnets.pool, prefix: this.subnets.prefix, attempts: MAX_SUBNET_ATTEMPTS },
    );
  }

  /** Removes the network (gone already is fine) and frees its subnet. */
  async remove(id: string): Promise<void> {
    try {
      await this.docker.getNetwork(id).remove();
    } catch (err) {
      if (!isStatus(err, 404)) throw mapDockerError(err, `remove network ${id}`);
    }
    const subnet = this.madeSubnets.get(id) ?? this.engineSubnets.get(id);
    if (subnet) {
      this.madeSubnets.delete(id);
      this.engineSubnets.delete(id);
      this.subnets.release(subnet);
    }
  }

  /** Every labelled network on the engine (a manager's lists the swarm's too), with its session and instance. */
  async listManaged(): Promise<ManagedNetwork[]> {
    let networks: Docker.NetworkInspectInfo[];
    try {
      networks = await this.docker.listNetworks({ filters: { label: [`${LABEL_MANAGED}=true`] } });
    } catch (err) {
      throw mapDockerError(err, 'list networks');
    }
    return networks.map((n) => {
      const network: ManagedNetwork = { id: n.Id, name: n.Name, created: n.Created };
      const session = n.Labels?.[LABEL_SESSION];
      if (session) network.session = session;
      const instance = n.Labels?.[LABEL_INSTANCE];
      if (instance) network.instance = instance;
      return network;
    });
  }

  /** Reads the subnets of every network on the engine (any daemon's), before the first allocation. */
  private loadSubnets(): Promise<void> {
    this.subnetsLoaded ??= this.refreshSubnets().catch((err) => {
      this.subnetsLoaded = null;
      throw err;
    });
    return this.subnetsLoaded;
  }

  /** The engine's networks now: networks made meanwhile by others are avoided, removed ones freed. */
  private async refreshSubnets(): Promise<void> {
    let networks: Docker.NetworkInspectInfo[];
    try {
      networks = await this.docker.listNetworks();
    } catch (err) {
      throw mapDockerError(err, 'list networks');
    }
    // Rebuilt, not added to: networks other daemons removed meanwhile are forgotten with their subnets.
    this.engineSubnets.clear();
    for (const network of networks) {
      for (const config of network.IPAM?.Config ?? []) if (config.Subnet) this.engineSubnets.set(network.Id, config.Subnet);
    }
    this.subnets.observe(this.engineSubnets.values());
  }

  /** The next subnet; when none looks free, the engine is read again first (networks seen earlier may be gone). */
  private async allocateSubnet(): Promise<string> {
    try {
      return this.subnets.allocate();
    } catch {
      await this.refreshSubnets();
      return this.subnets.allocate();
    }
  }
}

/**
 * A role as a Swarm service: the same labels, limits and hardening as the Docker runtime's containers, as far as
 * a service can carry them (Docker 20.10: no no-new-privileges, and the /tmp tmpfs takes a size but no mount
 * flags), one replica that is never restarted, pinned to the node the session was placed on. Created with zero
 * replicas (it exists, labelled, but runs nothing) and scaled to one by start; a stop pins it to no node (see the
 * driver). Pure, so it is tested without a swarm.
 */
import { LABEL_MANAGED, LABEL_ROLE, LABEL_SESSION, type ContainerSpec, type NetworkSpec } from '../driver.js';
import { CONTAINER_USER } from '../docker/driver.js';

export const TMPFS_BYTES = 16 * 1024 * 1024;
export type EndpointMode = 'dnsrr' | 'vip';

export interface ServiceOptions {
  endpointMode: EndpointMode;
  /** The node port a published role is reached at (required when the spec publishes). */
  hostPort?: number;
  /** SIGTERM grace before SIGKILL, as a service carries it (a stop stops its task with it). */
  stopGraceS: number;
}

export function labelsOf(spec: ContainerSpec): Record<string, string> {
  return { ...spec.labels, [LABEL_MANAGED]: 'true', [LABEL_SESSION]: spec.session, [LABEL_ROLE]: spec.role };
}

/** The Engine API's ServiceSpec for one role (POST /services/create). */
export function serviceSpec(spec: ContainerSpec, options: ServiceOptions): Record<string, unknown> {
  if (!spec.node) throw new Error(`service ${spec.name} has no node: a session is placed before its roles are created`);
  if (spec.publish && !options.hostPort) throw new Error(`service ${spec.name} publishes a port but was given no host port`);
  const labels = labelsOf(spec);
  return {
    Name: spec.name,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: spec.image,
        // The image's CMD is replaced (as docker run IMAGE cmd...), its entrypoint kept.
        ...(spec.command ? { Args: spec.command } : {}),
        Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
        // On the container too: the node's engine events and listings then name the session and role.
        Labels: labels,
        User: CONTAINER_USER,
        // Node as PID 1 ignores SIGTERM; the engine's init forwards it.
        Init: true,
        ReadOnly: true,
        CapabilityDrop: ['ALL'],
        Mounts: [{ Type: 'tmpfs', Target: '/tmp', TmpfsOptions: { SizeBytes: TMPFS_BYTES } }],
        StopGracePeriod: options.stopGraceS * 1e9,
      },
      Resources: { Limits: { NanoCPUs: spec.limits.nanoCpus, MemoryBytes: spec.limits.memoryBytes, Pids: spec.limits.pids } },
      RestartPolicy: { Condition: 'none', MaxAttempts: 0 },
      Placement: { Constraints: [`node.id==${spec.node}`] },
      Networks: [{ Target: spec.network.id, Aliases: spec.aliases }],
    },
    Mode: { Replicated: { Replicas: 0 } },
    EndpointSpec: {
      Mode: options.endpointMode,
      // Host mode: the port is opened on the node running the task (ingress needs IPVS), the one the daemon chose
      // (host-ports.ts), so it is known before the task runs.
      ...(spec.publish ? { Ports: [{ Protocol: 'tcp', TargetPort: spec.publish.port, PublishedPort: options.hostPort, PublishMode: 'host' }] } : {}),
    },
  };
}

/** The Engine API's NetworkCreateRequest for a session network spanning the nodes. */
export function overlayNetworkSpec(spec: NetworkSpec, subnet: string): Record<string, unknown> {
  return {
    Name: spec.name,
    Driver: 'overlay',
    Attachable: true,
    CheckDuplicate: true,
    Labels: { ...spec.labels, [LABEL_MANAGED]: 'true', [LABEL_SESSION]: spec.session },
    IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] },
  };
}

/** The node a service is pinned to (its node.id constraint), or null. */
export function pinnedNode(constraints: readonly string[] | undefined): string | null {
  for (const c of constraints ?? []) {
    const m = /^node\.id\s*==\s*(\S+)$/.exec(c.trim());
    if (m) return m[1]!;
  }
  return null;
}

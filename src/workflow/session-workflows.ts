/**
 * The plain and segmented session workflows as engine steps. Plain: admit, network, probe (create, start,
 * ready -> probe details), stream (create, start, ready), location. Segmented adds the segmentation server.
 * Every container is created at once; starts follow the data path (probe, stream, segmentation), each issued as
 * soon as the one upstream is started: the emulators retry their upstream connection, so waiting for the
 * upstream's ready line before starting would only add its start-up time to the session's.
 */
import type { Config } from '../config.js';
import {
  LABEL_MANAGED,
  LABEL_ROLE,
  LABEL_SESSION,
  type ContainerRef,
  type ContainerSpec,
  type ContainerState,
  type NetworkRef,
  type Placement,
  type ReadyInfo,
  type Role,
  type RuntimeDriver,
} from '../runtime/driver.js';
import { runWorkflow, type Step, type StepStatus } from './engine.js';
import { rolesOf, type SessionSpec } from './session-spec.js';

export const PROBE_PORT = 7000;
export const STREAM_PORT = 7100;

/** Capacity for a session's containers: reserve throws EdgeechoError RESOURCE_EXHAUSTED to refuse; release gives it back. */
export interface Capacity {
  reserve(session: string, roles: readonly Role[]): void | Promise<void>;
  release(session: string): void;
}

export type SessionWorkflowConfig = Pick<
  Config,
  'imageProbe' | 'imageStream' | 'imageSegmentation' | 'publishHost' | 'limitsProbe' | 'limitsStream' | 'limitsSegmentation' | 'readyTimeoutMs' | 'plainGraceMs'
>;

export interface SessionWorkflowDeps {
  driver: RuntimeDriver;
  config: SessionWorkflowConfig;
  capacity: Capacity;
  /** Extra labels on every object (tests mark theirs with io.edgeecho.test). */
  labels?: Record<string, string>;
  /** Called as objects come into being, so the record knows them even if the daemon dies mid-create. */
  onNetwork?: (network: NetworkRef) => void;
  onContainer?: (container: ContainerRef) => void;
  /**
   * When each container starts: 'parallel' (default) as soon as it exists; 'after-start' once the upstream's start
   * returned; 'after-ready' once the upstream printed its ready line.
   */
  startOrder?: 'parallel' | 'after-start' | 'after-ready';
}

export function objectName(session: string, what: Role | 'net'): string {
  return `edgeecho-${session}-${what}`;
}

export interface Location {
  host: string;
  port: number;
}

/** Step names, shared with the op that reads the values. */
export const STEP = {
  admit: 'admit',
  place: 'place',
  network: 'network',
  create: (role: Role) => `create ${role}`,
  start: (role: Role) => `start ${role}`,
  ready: (role: Role) => `ready ${role}`,
  location: 'location',
} as const;

export function envFor(role: Role, session: SessionSpec, config: SessionWorkflowConfig): Record<string, string> {
  switch (role) {
    case 'probe':
      return {
        PROBE_PORT: String(PROBE_PORT),
        PROBE_ID: session.id,
        PROBE_COUNT: String(session.count),
        PROBE_PAYLOAD_BYTES: String(session.payloadBytes),
        PROBE_RATE: String(session.rate ?? 0),
      };
    case 'stream':
      return {
        PROBE_HOST: 'probe',
        PROBE_PORT: String(PROBE_PORT),
        STREAM_PORT: String(STREAM_PORT),
        STREAM_MODE: session.mode,
        STREAM_GRACE_MS: String(config.plainGraceMs),
      };
    case 'segmentation':
      return { STREAM_HOST: 'stream', STREAM_PORT: String(STREAM_PORT) };
  }
}

/** Which env vars carry the listen port and the upstream's address, for runtimes that assign ports themselves. */
function wiringOf(role: Role): Pick<ContainerSpec, 'listen' | 'upstream'> {
  switch (role) {
    case 'probe':
      return { listen: { port: PROBE_PORT, env: 'PROBE_PORT' } };
    case 'stream':
      return { listen: { port: STREAM_PORT, env: 'STREAM_PORT' }, upstream: { alias: 'probe', hostEnv: 'PROBE_HOST', portEnv: 'PROBE_PORT' } };
    case 'segmentation':
      return { upstream: { alias: 'stream', hostEnv: 'STREAM_HOST', portEnv: 'STREAM_PORT' } };
  }
}

export function imageOf(role: Role, config: SessionWorkflowConfig): string {
  return role === 'probe' ? config.imageProbe : role === 'stream' ? config.imageStream : config.imageSegmentation;
}

export function limitsOf(role: Role, config: SessionWorkflowConfig) {
  return role === 'probe' ? config.limitsProbe : role === 'stream' ? config.limitsStream : config.limitsSegmentation;
}

/** What the roles hold where they run: the sum of their limits. */
export function demandOf(roles: readonly Role[], config: SessionWorkflowConfig): { memoryBytes: number; nanoCpus: number } {
  let memoryBytes = 0;
  let nanoCpus = 0;
  for (const role of roles) {
    memoryBytes += limitsOf(role, config).memoryBytes;
    nanoCpus += limitsOf(role, config).nanoCpus;
  }
  return { memoryBytes, nanoCpus };
}

export function sessionSteps(session: SessionSpec, deps: SessionWorkflowDeps): Step<any>[] {
  const { driver, config } = deps;
  const roles = rolesOf(session.mode);
  const labels = { ...deps.labels, [LABEL_MANAGED]: 'true', [LABEL_SESSION]: session.id };
  const startOrder = deps.startOrder ?? 'parallel';

  const steps: Step<any>[] = [
    {
      name: STEP.admit,
      run: async () => deps.capacity.reserve(session.id, roles),
      details: () => ({ roles }),
      undo: { name: 'release admission', run: async () => deps.capacity.release(session.id) },
    } satisfies Step<void>,
    {
      name: STEP.network,
      after: [driver.place ? STEP.place : STEP.admit],
      run: async () => {
        const network = await driver.createNetwork({ session: session.id, name: objectName(session.id, 'net'), labels });
        deps.onNetwork?.(network);
        return network;
      },
      details: (network) => ({ network: network.name, subnet: network.subnet }),
      undo: { name: 'remove network', run: (network) => driver.removeNetwork(network.id) },
    } satisfies Step<NetworkRef>,
  ];
  // Runtimes with many nodes choose one for all the session's roles (their data path stays on one host).
  const placed = driver.place !== undefined;
  if (placed) {
    steps.push({
      name: STEP.place,
      after: [STEP.admit],
      run: async (ctx) => driver.place!({ session: session.id, demand: demandOf(roles, config) }, ctx.signal),
      details: (placement) => placement.details,
      undo: { name: 'release placement', run: async () => driver.unplace?.(session.id) },
    } satisfies Step<Placement>);
  }

  roles.forEach((role, index) => {
    const upstream = index > 0 ? roles[index - 1]! : null;
    steps.push(
      {
        name: STEP.create(role),
        after: [STEP.network],
        // No signal: a create aborted mid-flight may still happen on the engine, unrecorded; it is cheap, so
        // it is let finish and then undone like any other.
        run: async (ctx) => {
          const container = await driver.createContainer({
            session: session.id,
            role,
            name: objectName(session.id, role),
            image: imageOf(role, config),
            network: ctx.result<NetworkRef>(STEP.network),
            aliases: [role],
            env: envFor(role, session, config),
            labels: { ...labels, [LABEL_ROLE]: role },
            ...(role === 'stream' ? { publish: { port: STREAM_PORT, hostIp: config.publishHost } } : {}),
            limits: limitsOf(role, config),
            ...wiringOf(role),
            ...(placed ? { node: ctx.result<Placement>(STEP.place).node } : {}),
          });
          deps.onContainer?.(container);
          return container;
        },
        details: (c) => ({ container: c.name, id: c.id.slice(0, 12) }),
        undo: { name: `remove ${role}`, run: (c) => driver.removeContainer(c.id) },
      } satisfies Step<ContainerRef>,
      {
        name: STEP.start(role),
        after: [STEP.create(role), ...(upstream && startOrder !== 'parallel' ? [startOrder === 'after-ready' ? STEP.ready(upstream) : STEP.start(upstream)] : [])],
        run: async (ctx) => {
          const id = ctx.result<ContainerRef>(STEP.create(role)).id;
          await driver.startContainer(id);
          // The published port is read back at once: a short segmented session can relay everything and exit before
          // the location step, and an exited container no longer shows its port.
          return role === 'stream' ? (await driver.inspectContainer(id)).published : undefined;
        },
      } satisfies Step<ContainerState['published']>,
      {
        name: STEP.ready(role),
        after: [STEP.start(role), ...(upstream ? [STEP.ready(upstream)] : [])],
        run: (ctx) => driver.waitReady(ctx.result<ContainerRef>(STEP.create(role)).id, { timeoutMs: config.readyTimeoutMs, signal: ctx.signal }),
        details: (info) => readyDetails(role, info),
      } satisfies Step<ReadyInfo>,
    );
  });

  steps.push({
    name: STEP.location,
    after: [STEP.ready('stream')],
    run: async (ctx) => {
      const stream = ctx.result<ContainerRef>(STEP.create('stream'));
      const published = ctx.result<ContainerState['published']>(STEP.start('stream')) ?? (await driver.inspectContainer(stream.id)).published;
      if (!published) {
        throw new Error(`stream server ${stream.name} has no published port after start; expected ${STREAM_PORT}/tcp on ${config.publishHost} (EDGEECHO_PUBLISH_HOST)`);
      }
      const host = published.host === '0.0.0.0' || published.host === '::' || !published.host ? config.publishHost : published.host;
      return { host, port: published.port };
    },
    details: (location) => ({ location }),
  } satisfies Step<Location>);
  return steps;
}

export function readyDetails(role: Role, info: ReadyInfo): Record<string, unknown> {
  if (role === 'probe') {
    const { event: _event, role: _role, ...probe } = info;
    return { probe };
  }
  const { event: _event, role: _role, ...rest } = info;
  return rest;
}

/** What a ready session is made of, read from the workflow's step results. */
export interface SessionCreated {
  network: NetworkRef;
  location: Location;
  /** The probe's ready details (its event and role fields dropped). */
  probe: ReadyInfo;
  containers: ContainerRef[];
}

/** Runs the session's steps; on failure or abort everything made so far is undone and the error thrown. */
export async function runSessionWorkflow(
  session: SessionSpec,
  deps: SessionWorkflowDeps,
  options: { signal: AbortSignal; onStatus: (status: StepStatus) => void },
): Promise<SessionCreated> {
  const values = await runWorkflow(sessionSteps(session, deps), options);
  const { event: _e, role: _r, ...probe } = values.get(STEP.ready('probe')) as ReadyInfo;
  return {
    network: values.get(STEP.network) as NetworkRef,
    location: values.get(STEP.location) as Location,
    probe,
    containers: rolesOf(session.mode).map((role) => values.get(STEP.create(role)) as ContainerRef),
  };
}

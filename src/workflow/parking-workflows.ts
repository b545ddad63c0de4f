/**
 * The warm pools' two workflows, beside the cold one (session-workflows.ts) and written against the same runtime
 * seam. Park: admit, network, create/start every role with an open stdin and EMULATOR_PARKED=1, `parked <role>`
 * once each printed its parked line (all started at once: a parked emulator does nothing, so there is no
 * data-path order to keep). Claim: `claim` (the parked objects become the session's and every container is
 * handed its session parameters on stdin at once), then `ready <role>` in data-path order as the ready lines come,
 * then `location`: the same step names and details as a cold create after its start steps, so results are identical.
 */
import { EdgeechoError } from '../../protocol/errors.js';
import {
  LABEL_MANAGED,
  LABEL_ROLE,
  LABEL_SESSION,
  type ContainerRef,
  type ContainerState,
  type NetworkRef,
  type ReadyInfo,
  type Role,
  type RuntimeDriver,
} from '../runtime/driver.js';
import { runWorkflow, type Step, type StepStatus } from './engine.js';
import { rolesOf, type SessionMode, type SessionSpec } from './session-spec.js';
import {
  envFor,
  imageOf,
  limitsOf,
  objectName,
  readyDetails,
  STEP,
  STREAM_PORT,
  type Location,
  type SessionCreated,
  type SessionWorkflowDeps,
} from './session-workflows.js';

/** The env var that parks an emulator (emulators/parking.ts). */
export const PARKED_ENV = 'EMULATOR_PARKED';

export const PARK_STEP = { parked: (role: Role) => `parked ${role}`, claim: 'claim' } as const;

/** A parked container, with its address on the session network when the runtime told it. */
export type ParkedContainer = ContainerRef & { address?: string };

/** What a parked session is made of. */
export interface ParkedObjects {
  id: string;
  mode: SessionMode;
  network: NetworkRef;
  containers: ParkedContainer[];
  location: Location;
}

/** Parked env: a session's env with placeholder parameters (the parameter line overrides them at claim). */
function parkedEnv(role: Role, id: string, mode: SessionMode, config: SessionWorkflowDeps['config']): Record<string, string> {
  const placeholder: SessionSpec = { id, mode, count: 0, payloadBytes: 0, rate: null };
  return { ...envFor(role, placeholder, config), [PARKED_ENV]: '1' };
}

/**
 * The parameter line of each role: its cold env for this session. A parked emulator overlays its own env with
 * it, so sending the whole cold env (not only what differs) keeps one source of truth, envFor. The upstream is
 * named by its address when known: a name lookup through the engine's DNS costs milliseconds on a busy host.
 */
export function parameterLine(role: Role, session: SessionSpec, config: SessionWorkflowDeps['config'], containers: readonly ParkedContainer[] = []): Record<string, string> {
  const env = envFor(role, session, config);
  const address = (of: Role): string | undefined => containers.find((c) => c.role === of)?.address;
  if (role === 'stream' && address('probe')) env.PROBE_HOST = address('probe')!;
  // The segmentation server's ready line then names the stream by address (`stream: "10.213.0.3:7100"`).
  if (role === 'segmentation' && address('stream')) env.STREAM_HOST = address('stream')!;
  return env;
}

function publishedLocation(published: ContainerState['published'], stream: ContainerRef, config: SessionWorkflowDeps['config']): Location {
  if (!published) {
    throw new Error(`stream server ${stream.name} has no published port after start; expected ${STREAM_PORT}/tcp on ${config.publishHost} (EDGEECHO_PUBLISH_HOST)`);
  }
  const host = published.host === '0.0.0.0' || published.host === '::' || !published.host ? config.publishHost : published.host;
  return { host, port: published.port };
}

export function parkSteps(id: string, mode: SessionMode, deps: SessionWorkflowDeps): Step<any>[] {
  const { driver, config } = deps;
  const roles = rolesOf(mode);
  const labels = { ...deps.labels, [LABEL_MANAGED]: 'true', [LABEL_SESSION]: id };
  const steps: Step<any>[] = [
    {
      name: STEP.admit,
      run: async () => deps.capacity.reserve(id, roles),
      undo: { name: 'release admission', run: async () => deps.capacity.release(id) },
    } satisfies Step<void>,
    {
      name: STEP.network,
      after: [STEP.admit],
      run: async () => {
        const network = await driver.createNetwork({ session: id, name: objectName(id, 'net'), labels });
        deps.onNetwork?.(network);
        return network;
      },
      undo: { name: 'remove network', run: (network) => driver.removeNetwork(network.id) },
    } satisfies Step<NetworkRef>,
  ];
  for (const role of roles) {
    steps.push(
      {
        name: STEP.create(role),
        after: [STEP.network],
        run: async (ctx) => {
          const container = await driver.createContainer({
            session: id,
            role,
            name: objectName(id, role),
            image: imageOf(role, config),
            network: ctx.result<NetworkRef>(STEP.network),
            aliases: [role],
            env: parkedEnv(role, id, mode, config),
            labels: { ...labels, [LABEL_ROLE]: role },
            ...(role === 'stream' ? { publish: { port: STREAM_PORT, hostIp: config.publishHost } } : {}),
            limits: limitsOf(role, config),
            openStdin: true,
          });
          deps.onContainer?.(container);
          return container;
        },
        undo: { name: `remove ${role}`, run: (c) => driver.removeContainer(c.id) },
      } satisfies Step<ContainerRef>,
      {
        name: STEP.start(role),
        after: [STEP.create(role)],
        run: async (ctx) => {
          const container = ctx.result<ContainerRef>(STEP.create(role));
          await driver.startContainer(container.id);
          return role === 'stream' ? publishedLocation((await driver.inspectContainer(container.id)).published, container, config) : undefined;
        },
      } satisfies Step<Location | undefined>,
      {
        name: PARK_STEP.parked(role),
        after: [STEP.start(role)],
        run: async (ctx) => {
          const container = ctx.result<ContainerRef>(STEP.create(role));
          const line = await driver.waitReady(container.id, { timeoutMs: config.readyTimeoutMs, signal: ctx.signal, parked: true });
          if (line.event !== 'parked') {
            // It ran its cold path on placeholder parameters: not an image that honours EMULATOR_PARKED.
            throw new EdgeechoError('INTERNAL', `${imageOf(role, config)} cannot park: ${container.name} printed ${JSON.stringify(line.event)} instead of a parked line with ${PARKED_ENV}=1 (emulators/CONTRACT.md, "Parking")`, {
              image: imageOf(role, config),
              role,
              cannot_park: true,
            });
          }
          return { ...container, ...(await addressOf(driver, container.id)) };
        },
      } satisfies Step<ParkedContainer>,
    );
  }
  return steps;
}

async function addressOf(driver: RuntimeDriver, id: string): Promise<{ address?: string }> {
  const { address } = await driver.inspectContainer(id);
  return address ? { address } : {};
}

/** Makes a parked session: everything is undone when any step fails or the signal aborts. */
export async function runParkWorkflow(id: string, mode: SessionMode, deps: SessionWorkflowDeps, options: { signal: AbortSignal; onStatus?: (s: StepStatus) => void }): Promise<ParkedObjects> {
  const values = await runWorkflow(parkSteps(id, mode, deps), options);
  return {
    id,
    mode,
    network: values.get(STEP.network) as NetworkRef,
    containers: rolesOf(mode).map((role) => values.get(PARK_STEP.parked(role)) as ParkedContainer),
    location: values.get(STEP.start('stream')) as Location,
  };
}

export interface ClaimDeps {
  driver: Pick<RuntimeDriver, 'unpark' | 'removeContainer' | 'removeNetwork'>;
  config: SessionWorkflowDeps['config'];
  capacity: SessionWorkflowDeps['capacity'];
  /** How long the parked session waited, for the claim step's details. */
  parkedMs: number;
}

export function claimSteps(session: SessionSpec, parked: ParkedObjects, deps: ClaimDeps): Step<any>[] {
  const { driver, config } = deps;
  const unpark = driver.unpark;
  if (!unpark) throw new Error('claimSteps: the runtime cannot unpark (no driver.unpark)');
  const roles = rolesOf(session.mode);
  const byRole = new Map(parked.containers.map((c) => [c.role, c]));
  for (const role of roles) if (!byRole.has(role)) throw new Error(`parked session ${parked.id} has no ${role} container`);
  const steps: Step<any>[] = [
    {
      name: PARK_STEP.claim,
      // Hands every container its line at once: an unparked emulator retries its upstream within milliseconds
      // (emulators/CONTRACT.md, "Parking"), so waiting for each upstream's ready line would only add round trips.
      run: async (ctx) => {
        const lines = new Map<Role, Promise<ReadyInfo>>();
        for (const role of roles) {
          const ready = unpark.call(driver, byRole.get(role)!.id, parameterLine(role, session, config, parked.containers), { timeoutMs: config.readyTimeoutMs, signal: ctx.signal });
          // Awaited by its ready step; this only keeps an early failure from being an unhandled rejection meanwhile.
          ready.catch(() => undefined);
          lines.set(role, ready);
        }
        return lines;
      },
      details: () => ({ pool: 'hit', network: parked.network.name, containers: roles.map((r) => byRole.get(r)!.name), parked_ms: deps.parkedMs }),
      // The objects were made and the reservation taken when it parked; the claim gives them to this session,
      // so undoing it removes them like a cold create's rollback would.
      undo: {
        name: 'remove claimed objects',
        run: async () => {
          await Promise.all(parked.containers.map((c) => driver.removeContainer(c.id)));
          await driver.removeNetwork(parked.network.id);
          deps.capacity.release(session.id);
        },
      },
    } satisfies Step<Map<Role, Promise<ReadyInfo>>>,
  ];
  roles.forEach((role, index) => {
    const upstream = index > 0 ? roles[index - 1]! : null;
    steps.push({
      name: STEP.ready(role),
      after: [PARK_STEP.claim, ...(upstream ? [STEP.ready(upstream)] : [])],
      run: (ctx) => ctx.result<Map<Role, Promise<ReadyInfo>>>(PARK_STEP.claim).get(role)!,
      details: (info) => readyDetails(role, info),
    } satisfies Step<ReadyInfo>);
  });
  steps.push({
    name: STEP.location,
    after: [STEP.ready('stream')],
    run: async () => parked.location,
    details: (location) => ({ location }),
  } satisfies Step<Location>);
  return steps;
}

/** Claims a parked session for `session`: on failure or abort its objects are removed and its reservation released. */
export async function runClaimWorkflow(
  session: SessionSpec,
  parked: ParkedObjects,
  deps: ClaimDeps,
  options: { signal: AbortSignal; onStatus: (status: StepStatus) => void },
): Promise<SessionCreated> {
  const values = await runWorkflow(claimSteps(session, parked, deps), options);
  const { event: _e, role: _r, ...probe } = values.get(STEP.ready('probe')) as ReadyInfo;
  const containers = rolesOf(session.mode).map((role) => {
    const { id, name } = parked.containers.find((c) => c.role === role)!;
    return { id, name, role };
  });
  return { network: parked.network, location: values.get(STEP.location) as Location, probe, containers };
}

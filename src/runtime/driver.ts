/**
 * The runtime seam: everything the workflow, the session lifecycle, its detectors and the resource tracker need
 * from what runs a session's roles. The implementations: docker/ (containers on one engine), swarm/ (services on
 * a Docker Swarm; with docker/ the only places dockerode is imported) and local/ (child processes of the host's
 * node); create-runtime.ts picks one from config, so nothing above this folder knows which runs.
 */

export const LABEL_MANAGED = 'io.edgeecho.managed';
export const LABEL_SESSION = 'io.edgeecho.session';
export const LABEL_ROLE = 'io.edgeecho.role';
/** The daemon instance that made the object (its id lives in the daemon's records); see instance-scope.ts. */
export const LABEL_INSTANCE = 'io.edgeecho.instance';

export type Role = 'probe' | 'stream' | 'segmentation';

export interface NetworkSpec {
  session: string;
  /** edgeecho-<session>-net */
  name: string;
  labels: Record<string, string>;
}

export interface NetworkRef {
  id: string;
  name: string;
  subnet: string;
}

export interface ContainerSpec {
  session: string;
  role: Role;
  /** edgeecho-<session>-<role> */
  name: string;
  image: string;
  network: NetworkRef;
  /** DNS names on the session network (e.g. the role). */
  aliases: string[];
  env: Record<string, string>;
  labels: Record<string, string>;
  /** Container port to publish on the host (port chosen by the runtime, read back after start). */
  publish?: { port: number; hostIp: string };
  limits: { memoryBytes: number; nanoCpus: number; pids: number };
  /** Overrides the image's command (tests and benchmarks; the emulators use their default). */
  command?: string[];
  /**
   * The port the role listens on and the env var that tells it. Docker keeps it (each container has its own
   * network namespace); a runtime without one (local) gives the role a free port instead and rewrites the var.
   */
  listen?: { port: number; env: string };
  /** The upstream the role connects to, by alias, and the env vars carrying its address (rewritten likewise). */
  upstream?: { alias: string; hostEnv: string; portEnv: string };
  /** Keeps the container's stdin open for `unpark` (a parked emulator, emulators/CONTRACT.md "Parking"). */
  openStdin?: boolean;
  /** The node chosen by `place` (runtimes with nodes): the role runs there. */
  node?: string;
}

export interface ContainerRef {
  id: string;
  name: string;
  role: Role;
}

export interface ContainerState {
  id: string;
  name: string;
  role?: Role;
  session?: string;
  /** The io.edgeecho.instance label; absent on objects of edgeecho versions before instances. */
  instance?: string;
  running: boolean;
  status: string;
  exitCode: number | null;
  oomKilled: boolean;
  startedAt: string | null;
  finishedAt: string | null;
  /** ISO time the runtime created the container, when the listing tells (orphan grace counts from it). */
  created?: string;
  /** Host address of the published port, when one was asked for and the container runs. */
  published?: { host: string; port: number };
  /** Its address on its session network, when the runtime tells (inspect only). */
  address?: string;
  /**
   * Why the runtime ended it, when the role did not end by itself (e.g. "its node edge-2 is down"): the session
   * fails with this reason rather than with an exit code nobody saw.
   */
  ended?: string;
}

/** The emulator's ready line, parsed (one JSON object), or what the port check learned. */
export type ReadyInfo = Record<string, unknown>;

export interface RuntimeEvent {
  type: 'container' | 'network';
  action: string; // die, oom, destroy, start, ...
  id: string;
  session?: string;
  role?: string;
  instance?: string;
  exitCode?: number;
  /** Nanoseconds since the epoch as the runtime reports it, for catch-up after a reconnect. */
  timeNano: number;
}

export interface ManagedNetwork {
  id: string;
  name: string;
  session?: string;
  instance?: string;
  created: string;
}

export interface ObjectCount {
  containers: number;
  running: number;
  networks: number;
}

export interface ManagedObjects {
  containers: ContainerState[];
  networks: ManagedNetwork[];
  /**
   * Labelled objects left out of the lists because they are not this daemon's (set by the instance scope):
   * those of other instances, and those of no instance that none of this daemon's records claims.
   */
  outside?: { foreign: ObjectCount; unlabelled: ObjectCount };
}

export interface ContainerUsage {
  cpuPercent: number;
  memoryBytes: number;
  memoryLimitBytes: number;
}

/** What a session will hold on the node it is placed on: the sum of its roles' limits. */
export interface PlacementRequest {
  session: string;
  demand: { memoryBytes: number; nanoCpus: number };
}

/** The node a session's roles run on, and what the session's status step says of it. */
export interface Placement {
  node: string;
  details: Record<string, unknown>;
}

/** A node of a runtime with many (`edgeecho resources`). */
export interface RuntimeNode {
  id: string;
  hostname: string;
  /** The address its published ports are reached at. */
  address: string;
  role: 'manager' | 'worker';
  /** ready | down | unknown | disconnected */
  state: string;
  /** active | pause | drain */
  availability: string;
  labels: Record<string, string>;
  capacity: { memoryBytes: number; nanoCpus: number };
  /** Limits of the sessions placed there (of every edgeecho instance) and reservations of other services. */
  reserved: { memoryBytes: number; nanoCpus: number };
  /** edgeecho sessions with roles there. */
  sessions: number;
  /** Whether new sessions may be placed there, and if not, why. */
  eligible: boolean;
  why?: string;
}

export interface RuntimeDriver {
  readonly name: string;
  ping(signal?: AbortSignal): Promise<void>;
  createNetwork(spec: NetworkSpec, signal?: AbortSignal): Promise<NetworkRef>;
  removeNetwork(id: string): Promise<void>;
  createContainer(spec: ContainerSpec, signal?: AbortSignal): Promise<ContainerRef>;
  startContainer(id: string, signal?: AbortSignal): Promise<void>;
  /**
   * Resolves with the ready line once the container accepts connections; rejects if it exits first. With
   * `parked`, a parked line resolves too (its `event` says which came: an image that cannot park prints ready).
   */
  waitReady(id: string, options: { timeoutMs: number; signal?: AbortSignal; parked?: boolean }): Promise<ReadyInfo>;
  /**
   * Hands a parked container its session parameters (one JSON line on its stdin) and resolves with the ready line
   * it then prints. Absent: this runtime cannot park, and warm pools stay off.
   */
  unpark?(id: string, parameters: Record<string, string>, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ReadyInfo>;
  /**
   * Graceful stop (SIGTERM, then SIGKILL after timeoutS). A container already stopped is not an error. A swarm
   * service carries its grace from creation (EDGEECHO_STOP_TIMEOUT_S): it stops with that whatever timeoutS says.
   */
  stopContainer(id: string, timeoutS: number): Promise<void>;
  /** Force-removes; a container already gone is not an error. */
  removeContainer(id: string): Promise<void>;
  inspectContainer(id: string): Promise<ContainerState>;
  /** The last lines the container printed (final stats are parsed from them). */
  logs(id: string, tailLines: number): Promise<string>;
  listManaged(): Promise<ManagedObjects>;
  /** Labelled events from `since` (seconds) until the signal aborts or the stream breaks (then it throws). */
  events(options: { since?: number; signal: AbortSignal }): AsyncIterable<RuntimeEvent>;
  stats(id: string): Promise<ContainerUsage>;
  /**
   * Runtimes with many nodes: chooses the node a session's roles run on, holding its demand there until
   * `unplace`; throws RESOURCE_EXHAUSTED when no node has room. Absent: the runtime is one host.
   */
  place?(request: PlacementRequest, signal?: AbortSignal): Promise<Placement>;
  /** Gives back what `place` held for the session (its objects, while they exist, still count). */
  unplace?(session: string): void;
  /** The runtime's nodes, for `edgeecho resources`. */
  nodes?(): Promise<RuntimeNode[]>;
}

/** What the runtime's sessions run, made ready (for Docker: the emulator images). */
export interface PrepareReport {
  built: Array<{ role: Role; image: string }>;
  present: Array<{ role: Role; image: string }>;
  /** What the build stood on; absent when nothing was built. */
  base?: { image: string; source: string };
  durationMs: number;
}

/** A runtime as the composition root and the CLI use it: the driver, plus checking and preparing it. */
export interface Runtime {
  readonly driver: RuntimeDriver;
  /** Throws RUNTIME_UNAVAILABLE, saying what to do, when the runtime cannot serve sessions. */
  check(signal?: AbortSignal): Promise<void>;
  /** Builds what sessions run when missing or stale (all of it with `force`). */
  prepare(options: { force?: boolean }): Promise<PrepareReport>;
  /** Releases what the runtime holds in this process (timers); what it runs keeps running, to be adopted. */
  close?(): void;
}

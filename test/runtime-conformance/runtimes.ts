/**
 * The runtimes the conformance suite runs against: docker when an engine answers (or EDGEECHO_REQUIRE_DOCKER=1,
 * when its absence fails the run), local always (Linux). Each test file loops over them with the same
 * assertions; what differs per runtime lives here: how a test sees what is left (the engine's labelled objects,
 * or the local runtime's records and live processes) and how a role is made to fail.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { killMentioning, localObjects, processesMentioning } from '../../support/local-objects.js';
import { labelledObjects, removeLabelled, startDaemonProcess, tempDataDir, type DaemonProcess } from '../../support/daemon-process.js';
import { baseImage, leftovers, testDriver } from '../../support/reaping-fixtures.js';
import { loadConfig, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { DockerDriver } from '../../src/runtime/docker/driver.js';
import { ensureEmulatorImages } from '../../src/runtime/docker/images.js';
import type { ContainerSpec, NetworkRef, Role, RuntimeDriver } from '../../src/runtime/driver.js';
import { LocalDriver } from '../../src/runtime/local/driver.js';
import { localLayout } from '../../src/runtime/local/layout.js';
import { localRuntime } from '../../src/runtime/local/local-runtime.js';
import { InstanceScope } from '../../src/runtime/instance-scope.js';
import { newInstanceId } from '../../src/sessions/session-id.js';
import { SESSION_MARKER_PREFIX } from '../../src/runtime/local/spawn-role.js';
import { dockerOrSkip, REQUIRE_DOCKER } from '../support/docker.js';
import { swarmUnderTest } from './swarm-under-test.js';

export type RuntimeName = 'docker' | 'local' | 'swarm';

export interface RuntimeUnderTest {
  name: RuntimeName;
  /** Runs real sessions (emulators prepared). */
  driver: RuntimeDriver;
  /**
   * Where a port published on 127.0.0.1 is reached: there for docker and local; a swarm opens it on every address
   * of the node running the task, reached at the node's address (read when asked: a dockerd restart may change it).
   */
  publishedHost: () => Promise<string>;
  /** A driver on the same state, as a daemon (re)start of `instance` would make it (reconcile after a "crash"). */
  freshDriver(instance?: string): RuntimeDriver;
  /** What fixture sessions run on (Docker: the host-node base image; local: unused). */
  fixtureImage: string;
  /** A driver for fixture sessions (Docker: its own subnet pool). */
  fixtureDriver: RuntimeDriver;
  /** What the runtime still holds of this session (listed by `via`, default `driver`); for local also unlisted processes. */
  leftovers(session: string, via?: RuntimeDriver): Promise<number>;
  /** Config that makes one role exit before its ready line, and that role. */
  exitBeforeReady: { overrides: Partial<Config>; role: Role };
  /** Env that makes a daemon process serve sessions with this runtime. */
  daemonEnv: Record<string, string>;
  /** Objects a daemon on dataDir made for these sessions (all when omitted) and left: containers/networks, or records/processes. */
  daemonLeftovers(label: string, dataDir: string, sessions?: string[]): Promise<string[]>;
  /** Removes every object a daemon on dataDir (labelled `label`) made; the daemon must be dead. */
  cleanupDaemonObjects(label: string, dataDir: string): Promise<void>;
  close(): Promise<void>;
}

const { config } = loadConfig({ env: {} });

/** A probe-role spec running `node -e script`, listening where PORT says (rewritten by runtimes without namespaces). */
export const TEST_LABELS = { 'io.edgeecho.test': 'workflow' };

export function nodeRoleSpec(session: string, network: NetworkRef, script: string, cfg: Pick<Config, 'imageProbe' | 'limitsProbe'>): ContainerSpec {
  return {
    session,
    role: 'probe',
    name: `edgeecho-${session}-probe`,
    image: cfg.imageProbe,
    network,
    aliases: ['probe'],
    env: { PORT: '7000' },
    labels: TEST_LABELS,
    publish: { port: 7000, hostIp: '127.0.0.1' },
    listen: { port: 7000, env: 'PORT' },
    limits: cfg.limitsProbe,
    command: ['node', '-e', script],
  };
}

/** Processes whose command line mentions `text` (a data dir, a session marker), zombies left out. */
export const processesUnder = processesMentioning;

async function localUnderTest(): Promise<RuntimeUnderTest> {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgeecho-local-conformance-'));
  const runtime = localRuntime({ dataDir, publishHost: '127.0.0.1' }, silentLogger);
  await runtime.check();
  await runtime.prepare({});
  // The last test file's cleanup has run by then; this catches a run that ended early.
  process.once('exit', () => {
    killMentioning(join(dataDir, 'local'));
    rmSync(dataDir, { recursive: true, force: true });
  });
  // Seen through an instance scope as a daemon sees its runtime: each test's objects apart from the others'.
  const fresh = (instance = newInstanceId()): RuntimeDriver => new InstanceScope(new LocalDriver({ layout: localLayout(dataDir), publishHost: '127.0.0.1' }), { instance });
  const self: RuntimeUnderTest = {
    name: 'local',
    driver: runtime.driver,
    publishedHost: async () => '127.0.0.1',
    freshDriver: fresh,
    fixtureImage: 'unused',
    fixtureDriver: new InstanceScope(runtime.driver, { instance: newInstanceId() }),
    // Listed objects, plus any process of the session the runtime does not list as running (a leaked one).
    leftovers: async (session, via = runtime.driver) => {
      const running = (await via.listManaged()).containers.filter((c) => c.session === session && c.running).length;
      return (await leftovers(via, session)) + Math.max(0, processesUnder(`${SESSION_MARKER_PREFIX}${session}`).length - running);
    },
    // No address of TEST-NET-1 is this host's: the stream cannot listen there and exits 2 ("cannot listen").
    exitBeforeReady: { overrides: { publishHost: '192.0.2.1' }, role: 'stream' },
    daemonEnv: { EDGEECHO_RUNTIME: 'local' },
    // Read-only: the daemon may still run, so no driver (whose start-up adopts and rewrites records) is made.
    daemonLeftovers: async (_label, dir, sessions) => localObjects(dir, sessions),
    async cleanupDaemonObjects(_label, dir) {
      const driver = new LocalDriver({ layout: localLayout(dir), publishHost: '127.0.0.1' });
      const managed = await driver.listManaged();
      await Promise.all(managed.containers.map((c) => driver.removeContainer(c.id).catch(() => undefined)));
      for (const n of managed.networks) await driver.removeNetwork(n.id).catch(() => undefined);
      driver.close();
      // Anything the records lost track of (they are the test's own: the dir is unique to it).
      killMentioning(join(dir, 'local'));
    },
    async close() {
      await self.cleanupDaemonObjects('', dataDir);
      runtime.close?.();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return self;
}

async function dockerUnderTest(docker: Docker): Promise<RuntimeUnderTest> {
  await ensureEmulatorImages(docker, { config, log: silentLogger });
  const driver = new DockerDriver({ docker, subnetPool: config.subnetPool, subnetPrefix: config.subnetPrefix });
  const fixtureDriver = testDriver(docker);
  return {
    name: 'docker',
    driver,
    publishedHost: async () => '127.0.0.1',
    freshDriver: (instance) => testDriver(docker, instance),
    fixtureImage: await baseImage(docker),
    fixtureDriver,
    leftovers: (session, via = driver) => leftovers(via, session),
    // node cannot start in 6 MiB: the kernel's OOM killer ends the probe before its ready line.
    exitBeforeReady: { overrides: { limitsProbe: { memoryBytes: 6 * 1024 * 1024, nanoCpus: 500_000_000, pids: 64 } }, role: 'probe' },
    daemonEnv: { EDGEECHO_RUNTIME: 'docker' },
    async daemonLeftovers(label, _dir, sessions) {
      const left = await labelledObjects(docker, label, sessions);
      return [...left.containers, ...left.networks];
    },
    cleanupDaemonObjects: (label) => removeLabelled(docker, label),
    async close() {},
  };
}

let cached: Promise<RuntimeUnderTest[]> | null = null;

/** Every runtime this machine can run, built once per test process and closed at exit. */
export function runtimesUnderTest(suite: string): Promise<RuntimeUnderTest[]> {
  cached ??= (async () => {
    const list: RuntimeUnderTest[] = [];
    const docker = await dockerOrSkip(`runtime-conformance (docker): ${suite}`);
    if (docker) list.push(await dockerUnderTest(docker));
    list.push(await localUnderTest());
    // Swarm mode changes the engine (left as found at exit): run in CI, on request, or on an engine already a manager.
    if (docker) {
      const swarm = await swarmUnderTest(docker, { initialise: REQUIRE_DOCKER || process.env.EDGEECHO_TEST_SWARM === '1' });
      if (swarm) list.push(swarm);
      else console.warn(`\n!!! SKIPPED runtime-conformance (swarm): ${suite}: the engine is in no swarm; set EDGEECHO_TEST_SWARM=1 (or EDGEECHO_REQUIRE_DOCKER=1) to make it a single-node one for the run !!!\n`);
    }
    return list;
  })();
  return cached;
}

/** A real daemon process serving sessions with this runtime, and how to see and remove what it left. */
export function daemonHarness(rt: RuntimeUnderTest, label: string) {
  return {
    start: (dataDir: string, args: string[] = []): Promise<DaemonProcess> => startDaemonProcess({ label, dataDir, env: rt.daemonEnv, args }),
    tempDataDir: () => tempDataDir(),
    /** A waitFor condition: true once nothing of these sessions (all of the daemon's when omitted) is left. */
    noneLeft: (dataDir: string, ids?: string[]) => async (): Promise<true | undefined> => ((await rt.daemonLeftovers(label, dataDir, ids)).length === 0 ? true : undefined),
    /** Kills the daemons (SIGKILL), removes what they made and the data dir. */
    async cleanup(daemons: Array<DaemonProcess | undefined>, dataDir: string): Promise<void> {
      await Promise.all(daemons.map((d) => d?.kill('SIGKILL')));
      await rt.cleanupDaemonObjects(label, dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A real daemon with EDGEECHO_RUNTIME=swarm on the host's manager, its sessions kept on two worker nodes of this
 * machine (support/swarm-cluster.ts) by their cluster label: sessions spread over the nodes and are consumed at
 * their locations, a drained node takes no new session (and with every node drained a create is refused naming
 * why), and a node whose engine dies fails its session with that reason. Opt-in (EDGEECHO_SWARM_CLUSTER=1).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Client, type StatusFrame } from '../../src/client/index.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { ensureEmulatorImages } from '../../src/runtime/docker/images.js';
import { LABEL_SESSION } from '../../src/runtime/driver.js';
import { CLUSTER_LABEL, DEFAULT_NODE_DOWN_TIMEOUT_MS, removeClusterLeftovers, SwarmCluster, type SwarmNode } from '../../support/swarm-cluster.js';
import { runLabel, startDaemonProcess, tempDataDir, TEST_LABEL, waitFor, type DaemonProcess, type SessionView } from '../../support/daemon-process.js';
import { consume } from '../../support/stream-consumer.js';
import { labelledSwarmObjects, removeLabelledSwarm } from '../../support/swarm-mode.js';
import { dockerOrSkip } from '../support/docker.js';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';

const ENABLED = process.env.EDGEECHO_SWARM_CLUSTER === '1';
const docker = ENABLED ? await dockerOrSkip('swarm-cluster/daemon-sessions') : null;
if (!ENABLED) console.warn('\n!!! SKIPPED swarm-cluster/daemon-sessions: opt-in, set EDGEECHO_SWARM_CLUSTER=1 (needs the host engine to be a swarm manager) !!!\n');

const LABEL = runLabel('swarm-cluster-daemon');
/** Session networks of this daemon: apart from the default pool other daemons on this swarm cut from. */
const SUBNET_POOL = '10.217.0.0/16';
const CREATE_TIMEOUT_MS = 90_000;
/** Node down (~13 s here) plus the daemon's poll and teardown. */
const NODE_LOST_TIMEOUT_MS = DEFAULT_NODE_DOWN_TIMEOUT_MS + 30_000;

interface Created {
  id: string;
  location: { host: string; port: number };
  /** The place step's details: the node chosen for all the session's roles. */
  placed: { node: string; address: string };
}

if (docker) {
  const cluster = new SwarmCluster();
  const dataDir = tempDataDir();
  let daemon: DaemonProcess | undefined;
  let client: Client | undefined;
  let nodes: SwarmNode[] = [];
  const createMs: number[] = [];
  const byName = (name: string): SwarmNode => nodes.find((n) => n.name === name)!;

  /** A plain create that must fail: its error. */
  async function refusedCreate(why: string): Promise<{ code?: string; message: string; details?: Record<string, unknown> }> {
    const refusal = await client!.request('session.create', { mode: 'plain', count: 10 }, { timeoutMs: CREATE_TIMEOUT_MS }).then(
      () => null,
      (err: unknown) => err as { code?: string; message: string; details?: Record<string, unknown> },
    );
    assert.ok(refusal, why);
    return refusal!;
  }

  async function create(count: number): Promise<Created> {
    const started = Date.now();
    const frames: StatusFrame[] = [];
    const result = await client!.request<{ id: string; location: Created['location'] }>('session.create', { mode: 'plain', count }, { onStatus: (f) => frames.push(f), timeoutMs: CREATE_TIMEOUT_MS });
    const place = frames.find((f) => f.step === 'place' && f.state === 'done');
    assert.ok(place, `a place step in ${JSON.stringify(frames.map((f) => f.step))}`);
    const details = place.details as { node: string; address: string };
    createMs.push(Date.now() - started);
    return { ...result, placed: { node: details.node, address: details.address } };
  }

  test.before(async () => {
    const removed = await removeClusterLeftovers();
    if (removed.length > 0) console.warn(`removed leftovers of crashed cluster runs: ${removed.join(', ')}`);
    const { config } = loadConfig({ env: {} });
    await ensureEmulatorImages(docker, { config, log: silentLogger });
    nodes = await cluster.start(2);
    // Without a registry each node needs the emulator images (the issue's second way: loaded into every node).
    await cluster.loadImages([config.imageProbe, config.imageStream, config.imageSegmentation]);
    daemon = await startDaemonProcess({
      label: LABEL,
      dataDir,
      env: { EDGEECHO_RUNTIME: 'swarm', EDGEECHO_SWARM_CONSTRAINTS: `${CLUSTER_LABEL}=${cluster.id}`, EDGEECHO_SUBNET_POOL: SUBNET_POOL },
    });
    client = await connect({ port: daemon.port });
  });

  test.after(async () => {
    await client?.close().catch(() => undefined);
    await daemon?.kill('SIGKILL');
    try {
      await removeLabelledSwarm(docker, TEST_LABEL, LABEL);
    } finally {
      await cluster.stop();
      rmSync(dataDir, { recursive: true, force: true });
      console.log(`session.create to ready on a worker: ${createMs.join(', ')} ms`);
      console.log(`swarm cluster ${cluster.id} timings: ${cluster.timings.map((t) => `${t.step}${t.node ? ` ${t.node}` : ''} ${t.ms} ms`).join('; ')}`);
    }
  });

  test('sessions spread over both nodes; each location is its node\'s address and a client there gets every frame', async () => {
    const sessions = [await create(1000), await create(1000)];
    // Placed one after the other by the least loaded node: the second goes where the first is not.
    assert.equal(sessions.map((s) => s.placed.node).sort(), nodes.map((n) => n.name).sort());
    for (const s of sessions) {
      const node = byName(s.placed.node);
      assert.is(s.location.host, node.ip, `location of ${s.id} on ${node.name}`);
      assert.is(s.placed.address, node.ip);
      const got = await consume(s.location, 1000);
      assert.is(got.frames, 1000);
      const final = await client!.request<SessionView>('session.watch', { id: s.id }, { timeoutMs: 60_000 });
      assert.is(final.state, 'completed', JSON.stringify(final.error));
    }
  });

  test('a drained node takes no new session; with both drained a create is refused naming the drain', async () => {
    const [drained, open] = nodes as [SwarmNode, SwarmNode];
    await cluster.drain(drained);
    const sessions = [await create(10), await create(10)];
    assert.equal(sessions.map((s) => s.placed.node), [open.name, open.name]);
    for (const s of sessions) await client!.request('session.stop', { id: s.id }, { timeoutMs: 60_000 });
    await cluster.drain(open);
    const e = await refusedCreate('a create with every node drained must be refused');
    assert.is(e.code, 'RESOURCE_EXHAUSTED', e.message);
    assert.match(e.message, /no node may take sessions/);
    for (const node of nodes) assert.match(e.message, `${node.name}: availability drain`);
    for (const node of nodes) await cluster.activate(node);
  });

  test('a node without the stream image fails the create at once, naming the node and the image; nothing is left', async () => {
    const { config } = loadConfig({ env: {} });
    const [bare, other] = nodes as [SwarmNode, SwarmNode];
    execFileSync('docker', ['exec', bare.containerId, 'docker', 'rmi', '-f', config.imageStream], { stdio: 'pipe' });
    await cluster.drain(other);
    try {
      const e = await refusedCreate('a create on a node without its image must fail');
      assert.is(e.code, 'INTERNAL', e.message);
      assert.match(e.message, `was rejected on node ${bare.name}`);
      assert.match(e.message, config.imageStream);
      assert.is(e.details?.step, 'ready stream');
    } finally {
      await cluster.activate(other);
      await cluster.loadImages([config.imageStream], [bare]);
    }
    const sessions = await client!.request<{ sessions: Array<{ id: string; state: string }> }>('session.list', {});
    const failed = sessions.sessions.find((r) => r.state === 'failed');
    assert.ok(failed, 'the failed create is recorded');
    const left = await labelledSwarmObjects(docker, TEST_LABEL, LABEL, LABEL_SESSION, [failed!.id]);
    assert.equal(left, [], 'the rollback leaves nothing of the session');
  });

  test('a node whose engine dies fails its session with that reason, and the session\'s services go', async () => {
    // A stream waiting for its client stays ready until its node goes.
    const s = await create(1_000_000);
    const node = byName(s.placed.node);
    const killed = Date.now();
    await cluster.killEngine(node);
    const final = await client!.request<SessionView>('session.watch', { id: s.id }, { timeoutMs: NODE_LOST_TIMEOUT_MS });
    const ms = Date.now() - killed;
    console.log(`session ${s.id} on ${node.name} failed ${ms} ms after the node's engine was killed: ${final.transitions.at(-1)?.reason}`);
    assert.is(final.state, 'failed');
    assert.match(final.transitions.at(-1)?.reason ?? '', /node/);
    assert.match(final.error?.message ?? '', /node/);
    await waitFor(`no service of ${s.id} left`, async () => {
      const left = (await labelledSwarmObjects(docker, TEST_LABEL, LABEL, LABEL_SESSION, [s.id])).filter((o) => o.startsWith('service'));
      return left.length === 0 ? true : undefined;
    }, 30_000);
  });
}

test.run();

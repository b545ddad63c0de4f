/**
 * The multi-node swarm fixture (support/swarm-cluster.ts) against the real engine: two worker nodes on this machine
 * join the host's swarm, run services placed on them, reach each other over an attachable overlay, drain, go Down
 * when their engine dies, and leave nothing behind. Opt-in (EDGEECHO_SWARM_CLUSTER=1): it needs the host engine
 * to be a swarm manager and takes about a minute, most of it waiting for the manager to notice a dead node.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { buildHostNodeBase } from '../../src/runtime/docker/base-image.js';
import { silentLogger } from '../../src/log.js';
import { CLUSTER_LABEL, clusterObjects, DEFAULT_NODE_DOWN_TIMEOUT_MS, removeClusterLeftovers, SwarmCluster, type SwarmNode } from '../../support/swarm-cluster.js';
import { dockerOrSkip } from '../support/docker.js';
import { waitFor } from '../../support/daemon-process.js';

const run = promisify(execFile);
const ENABLED = process.env.EDGEECHO_SWARM_CLUSTER === '1';
const docker = ENABLED ? await dockerOrSkip('swarm-cluster/cluster') : null;
if (!ENABLED) console.warn('\n!!! SKIPPED swarm-cluster/cluster: opt-in, set EDGEECHO_SWARM_CLUSTER=1 (needs the host engine to be a swarm manager) !!!\n');

const FIXTURE = fileURLToPath(new URL('../../support/swarm-cluster.ts', import.meta.url));
const SERVICE_PORT = 7000;
/** A task runs ~1.1 s after create on the host; on a node under load, more. */
const TASK_TIMEOUT_MS = 30_000;
/** Overlay DNS of a new task reaches the other nodes by gossip: ~2 s measured. */
const OVERLAY_TIMEOUT_MS = 30_000;
const SAYS_HOSTNAME = `require('net').createServer((s)=>s.end(require('os').hostname()+'\\n')).listen(${SERVICE_PORT})`;

/** The first line a TCP server at host:port sends before it closes. */
function readLine(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let data = '';
    socket.setTimeout(2_000, () => socket.destroy(new Error(`no answer from ${host}:${port} in 2000 ms`)));
    socket.on('data', (chunk) => (data += chunk));
    socket.on('end', () => resolve(data.trim()));
    socket.on('error', reject);
  });
}

interface Task {
  NodeID?: string;
  Status: { State: string; Err?: string; Message?: string; ContainerStatus?: { ContainerID?: string } };
}

async function tasksOf(service: string): Promise<Task[]> {
  return (await docker!.listTasks({ filters: { service: [service] } })) as Task[];
}

if (docker) {
  const cluster = new SwarmCluster();
  let image = '';
  let hostNodeId = '';
  let nodes: SwarmNode[] = [];

  async function createService(name: string, options: { node: string; command: string; publish?: boolean; network?: string }): Promise<string> {
    const service = await (docker as Docker).createService({
      Name: `edgeecho-cluster-${cluster.id}-${name}`,
      Labels: { [CLUSTER_LABEL]: cluster.id },
      TaskTemplate: {
        ContainerSpec: { Image: image, Command: ['node', '-e', options.command] },
        Placement: { Constraints: [`node.id==${options.node}`] },
        RestartPolicy: { Condition: 'none' },
        Networks: options.network ? [{ Target: options.network }] : [],
      },
      EndpointSpec: {
        Mode: 'dnsrr',
        Ports: options.publish ? [{ Protocol: 'tcp', TargetPort: SERVICE_PORT, PublishedPort: SERVICE_PORT, PublishMode: 'host' }] : [],
      },
    } as never);
    return service.id as string;
  }

  async function removeServicesAndNetworks(): Promise<void> {
    const filters = { label: [`${CLUSTER_LABEL}=${cluster.id}`] };
    for (const s of await docker!.listServices({ filters })) await docker!.getService(s.ID).remove();
    // an overlay is in use until the manager has shut the services' tasks down
    for (const n of await docker!.listNetworks({ filters })) {
      await waitFor(`network ${n.Name} removed`, async () => {
        try {
          await docker!.getNetwork(n.Id).remove();
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        }
        return true;
      }, 30_000);
    }
  }

  test.before(async () => {
    const removed = await removeClusterLeftovers();
    if (removed.length > 0) console.warn(`removed leftovers of crashed cluster runs: ${removed.join(', ')}`);
    hostNodeId = (await docker.info()).Swarm?.NodeID ?? '';
    image = await buildHostNodeBase(docker, silentLogger);
  });

  test.after(async () => {
    try {
      await removeServicesAndNetworks();
    } finally {
      await cluster.stop();
      console.log(`swarm cluster ${cluster.id} timings: ${cluster.timings.map((t) => `${t.step}${t.node ? ` ${t.node}` : ''} ${t.ms} ms`).join('; ')}`);
    }
  });

  test('two worker nodes join the host\'s swarm and are Ready and Active', async () => {
    nodes = await cluster.start(2);
    assert.is(nodes.length, 2);
    assert.is.not(nodes[0]!.ip, nodes[1]!.ip);
    const listed = await docker.listNodes();
    for (const node of nodes) {
      assert.equal(await cluster.nodeState(node), { state: 'ready', availability: 'active' });
      const seen = listed.find((n) => n.ID === node.nodeId);
      assert.ok(seen, `the manager lists ${node.name}`);
      assert.is(seen.Description.Hostname, node.name);
      assert.is(seen.Spec.Role, 'worker');
    }
  });

  test('the nodes of a run killed before stop() are removed by the next run\'s removeClusterLeftovers; a live run\'s are not', async () => {
    // A run that dies with -9 right after its node joined: nothing of it gets to call stop().
    const script = `import { SwarmCluster } from ${JSON.stringify(FIXTURE)};
      const cluster = new SwarmCluster();
      await cluster.start(1);
      console.log(cluster.id);
      process.kill(process.pid, 'SIGKILL');`;
    const crashed = await new Promise<string>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 120_000 }, (_err, stdout) => resolve(stdout.trim()));
    });
    assert.match(crashed, /^[0-9a-f]{8}$/, 'the crashed run printed its cluster id');
    const left = await clusterObjects(crashed);
    assert.is(left.containers.length, 1);
    assert.is(left.nodes.length, 1);
    const removed = await removeClusterLeftovers();
    // (another crashed run's leftovers may go too: only the dead are judged)
    for (const what of [`container ${left.containers[0]}`, `swarm node ${left.nodes[0]}`]) assert.ok(removed.includes(what), `${what} in ${removed.join(', ')}`);
    assert.equal(await clusterObjects(crashed), { containers: [], nodes: [] });
    assert.equal((await clusterObjects(cluster.id)).containers.sort(), nodes.map((n) => n.name).sort(), 'this live run\'s nodes stay');
    for (const node of nodes) assert.is((await cluster.nodeState(node)).state, 'ready');
  });

  test('a dnsrr service placed on each node runs there and its host-mode port answers at the node container\'s IP', async () => {
    await cluster.loadImages([image]);
    for (const [i, node] of nodes.entries()) {
      const service = await createService(`host-port-${i}`, { node: node.nodeId, command: SAYS_HOSTNAME, publish: true });
      await waitFor(`task of ${service} running on ${node.name}`, async () => {
        const [task] = await tasksOf(service);
        if (task?.Status.State === 'failed' || task?.Status.State === 'rejected') throw new Error(`task ${task.Status.State}: ${task.Status.Err}`);
        return task?.Status.State === 'running' && task.NodeID === node.nodeId ? true : undefined;
      }, TASK_TIMEOUT_MS);
      // the container's hostname is its short id: the answer comes from the task's container on that node
      const [task] = await tasksOf(service);
      const answer = await waitFor(`${node.ip}:${SERVICE_PORT} answering`, () => readLine(node.ip, SERVICE_PORT), TASK_TIMEOUT_MS);
      assert.is(answer, task!.Status.ContainerStatus!.ContainerID!.slice(0, 12));
    }
  });

  test('an attachable overlay carries traffic between a task on the host node and one on a worker', async () => {
    const network = `edgeecho-cluster-${cluster.id}-overlay`;
    await docker.createNetwork({ Name: network, Driver: 'overlay', Attachable: true, Labels: { [CLUSTER_LABEL]: cluster.id } });
    const server = `edgeecho-cluster-${cluster.id}-overlay-server`;
    await createService('overlay-server', { node: hostNodeId, command: SAYS_HOSTNAME, network });
    // exits 0 once the server on the host node answered by its service name across the overlay
    const reach = `setInterval(()=>{const s=require('net').connect(${SERVICE_PORT},'${server}');s.on('data',()=>process.exit(0));s.on('error',()=>{})},200)`;
    const client = await createService('overlay-client', { node: nodes[0]!.nodeId, command: reach, network });
    await waitFor(`overlay client on ${nodes[0]!.name} completing`, async () => {
      const [task] = await tasksOf(client);
      if (task?.Status.State === 'failed' || task?.Status.State === 'rejected') throw new Error(`task ${task.Status.State}: ${task.Status.Err}`);
      return task?.Status.State === 'complete' && task.NodeID === nodes[0]!.nodeId ? true : undefined;
    }, OVERLAY_TIMEOUT_MS);
  });

  test('a drained node sheds its task and takes no new one: a service constrained to it stays pending', async () => {
    const node = nodes[1]!;
    await cluster.drain(node);
    assert.equal(await cluster.nodeState(node), { state: 'ready', availability: 'drain' });
    const earlier = `edgeecho-cluster-${cluster.id}-host-port-1`;
    await waitFor(`task of ${earlier} shut down by the drain`, async () => {
      const [task] = await tasksOf(earlier);
      return task && task.Status.State !== 'running' ? true : undefined;
    }, TASK_TIMEOUT_MS);
    const service = await createService('after-drain', { node: node.nodeId, command: SAYS_HOSTNAME });
    const pending = await waitFor(`task of ${service} pending with a reason`, async () => {
      const [task] = await tasksOf(service);
      return task?.Status.State === 'pending' && task.Status.Err ? task : undefined;
    }, TASK_TIMEOUT_MS);
    assert.match(pending.Status.Err!, /no suitable node/);
    assert.is(pending.NodeID, undefined);
  });

  test(`killing a node's engine makes the node Down within ${DEFAULT_NODE_DOWN_TIMEOUT_MS} ms`, async () => {
    const node = nodes[0]!;
    const killed = Date.now();
    await cluster.killEngine(node);
    await cluster.waitForNodeState(node, 'down', DEFAULT_NODE_DOWN_TIMEOUT_MS);
    const ms = Date.now() - killed;
    console.log(`swarm node ${node.name} down ${ms} ms after its engine was killed`);
    // the other node is unaffected
    assert.is((await cluster.nodeState(nodes[1]!)).state, 'ready');
  });

  test('stop() leaves no node container, volume, cgroup or swarm node behind', async () => {
    const volumes = (await Promise.all(nodes.map((n) => docker.getContainer(n.containerId).inspect())))
      .flatMap((c) => c.Mounts.filter((m) => m.Type === 'volume').map((m) => m.Name!));
    assert.is(volumes.length, nodes.length, 'each node has its /var/lib/docker volume');
    await removeServicesAndNetworks();
    await cluster.stop();
    assert.equal(await clusterObjects(cluster.id), { containers: [], nodes: [] });
    const { stdout } = await run('docker', ['volume', 'ls', '--quiet']);
    const left = stdout.split('\n').filter((v) => volumes.includes(v));
    assert.equal(left, []);
    const cgroups = nodes.flatMap((n) => ['memory', 'cpu', 'pids'].map((h) => `/sys/fs/cgroup/${h}/${n.name}`)).filter((p) => existsSync(p));
    assert.equal(cgroups, []);
    assert.equal((await docker.listNodes()).map((n) => n.ID).filter((id) => nodes.some((node) => node.nodeId === id)), []);
  });
}

test.run();

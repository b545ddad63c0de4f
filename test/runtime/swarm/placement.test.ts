/** Placement on a swarm, from the manager's answers (no swarm needed): which node, and why none. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EdgeechoError } from '../../../protocol/errors.js';
import { choose, describeNodes, loadsByNode, parseConstraints } from '../../../src/runtime/swarm/placement.js';
import type { SwarmNode, SwarmService, SwarmTask } from '../../../src/runtime/swarm/swarm-objects.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function node(id: string, extra: { state?: string; availability?: string; labels?: Record<string, string>; cpus?: number; memory?: number } = {}): SwarmNode {
  return {
    ID: id,
    Spec: { Labels: extra.labels ?? {}, Role: 'worker', Availability: extra.availability ?? 'active' },
    Description: { Hostname: `host-${id}`, Resources: { NanoCPUs: (extra.cpus ?? 2) * 1e9, MemoryBytes: extra.memory ?? 10 * GiB } },
    Status: { State: extra.state ?? 'ready', Addr: `10.0.0.${id.length}` },
  };
}

function ours(id: string, session: string, nodeId: string, memory: number, cpus: number): SwarmService {
  return {
    ID: id,
    Spec: {
      Name: `edgeecho-${session}-${id}`,
      Labels: { 'io.edgeecho.managed': 'true', 'io.edgeecho.session': session },
      TaskTemplate: { Placement: { Constraints: [`node.id==${nodeId}`] }, Resources: { Limits: { MemoryBytes: memory, NanoCPUs: cpus * 1e9 } } },
    },
  };
}

function task(service: string, nodeId: string, state: string, reservation?: { memory: number; cpus: number }): SwarmTask {
  return {
    ID: `t-${service}`,
    ServiceID: service,
    NodeID: nodeId,
    Status: { State: state },
    ...(reservation ? { Spec: { Resources: { Reservations: { MemoryBytes: reservation.memory, NanoCPUs: reservation.cpus * 1e9 } } } } : {}),
  };
}

const options = { constraints: [], cpuRatio: 4 };

test('the least loaded node with room wins; live sessions of every instance, other services and pending placements count', () => {
  const nodes = [node('a'), node('bb'), node('ccc')];
  const services = [ours('s1', 'one', 'a', 2 * GiB, 2), ours('s2', 'two', 'bb', 1 * GiB, 1), { ID: 'x', Spec: { Name: 'theirs' } } as SwarmService];
  const tasks = [task('s1', 'a', 'running'), task('s2', 'bb', 'running'), task('x', 'ccc', 'running', { memory: 3 * GiB, cpus: 0 })];
  const loads = loadsByNode(services, tasks, new Map([['three', { node: 'bb', demand: { memoryBytes: 2 * GiB, nanoCpus: 1e9 } }]]));
  const described = describeNodes(nodes, loads, options);
  assert.equal(
    described.map((n) => [n.hostname, n.reserved.memoryBytes / GiB, n.reserved.nanoCpus / 1e9, n.sessions]),
    [
      ['host-a', 2, 2, 1],
      ['host-bb', 3, 2, 2],
      ['host-ccc', 3, 0, 0],
    ],
  );
  assert.is(described[0]!.capacity.memoryBytes, Math.floor(10 * GiB * 0.8));
  assert.is(described[0]!.capacity.nanoCpus, 8e9);
  // a: 2 of 8 GiB -> 25%; bb: 3/8; ccc: 3/8 memory: a is least loaded
  assert.is(choose(described, { memoryBytes: 384 * MiB, nanoCpus: 1.5e9 }).id, 'a');
});

test('ended roles hold nothing; created (no task yet) roles hold their pinned node', () => {
  const services = [ours('s1', 'one', 'a', 2 * GiB, 2), ours('s2', 'two', 'a', 1 * GiB, 1)];
  const loads = loadsByNode(services, [task('s1', 'a', 'complete')], new Map());
  assert.is(loads.get('a')!.memoryBytes, 1 * GiB);
  assert.equal([...loads.get('a')!.sessions], ['two']);
});

test('a session pending here counts once, by its placement, not again by its services', () => {
  const services = [ours('s1', 'one', 'a', 2 * GiB, 2)];
  const loads = loadsByNode(services, [task('s1', 'a', 'running')], new Map([['one', { node: 'a', demand: { memoryBytes: 3 * GiB, nanoCpus: 3e9 } }]]));
  assert.is(loads.get('a')!.memoryBytes, 3 * GiB);
});

test('a pending session whose listed roles all ended (kept for debugging) holds nothing', () => {
  const services = [ours('s1', 'one', 'a', 2 * GiB, 2)];
  const loads = loadsByNode(services, [task('s1', 'a', 'failed')], new Map([['one', { node: 'a', demand: { memoryBytes: 3 * GiB, nanoCpus: 3e9 } }]]));
  assert.is(loads.get('a')?.memoryBytes ?? 0, 0);
});

test('drained, down and unlabelled nodes take no sessions, and say why', () => {
  const constraints = parseConstraints('zone=edge, tier!=test');
  const nodes = [node('a', { availability: 'drain', labels: { zone: 'edge' } }), node('bb', { state: 'down', labels: { zone: 'edge' } }), node('ccc'), node('dddd', { labels: { zone: 'edge', tier: 'test' } })];
  const described = describeNodes(nodes, new Map(), { constraints, cpuRatio: 4 });
  assert.equal(
    described.map((n) => n.why),
    ['availability drain', 'down', 'label zone = edge unmet (EDGEECHO_SWARM_CONSTRAINTS)', 'label tier not = test unmet (EDGEECHO_SWARM_CONSTRAINTS)'],
  );
  try {
    choose(described, { memoryBytes: MiB, nanoCpus: 1e8 });
    assert.unreachable('expected a refusal');
  } catch (err) {
    assert.instance(err, EdgeechoError);
    const e = err as EdgeechoError;
    assert.is(e.code, 'RESOURCE_EXHAUSTED');
    assert.is(e.details?.resource, 'nodes');
    assert.match(e.message, 'no node may take sessions (host-a: availability drain; host-bb: down;');
  }
});

test('no room: the short resource is named with asked and the best free, and every node is listed', () => {
  const nodes = [node('a', { cpus: 1, memory: 2 * GiB }), node('bb', { cpus: 1, memory: 1 * GiB })];
  const described = describeNodes(nodes, loadsByNode([ours('s1', 'one', 'a', 1 * GiB, 1)], [], new Map()), options);
  try {
    choose(described, { memoryBytes: 1 * GiB, nanoCpus: 1e9 });
    assert.unreachable('expected a refusal');
  } catch (err) {
    const e = err as EdgeechoError;
    assert.is(e.code, 'RESOURCE_EXHAUSTED');
    assert.equal(e.details, { resource: 'memory', asked: GiB, free: Math.floor(1 * GiB * 0.8) });
    assert.match(e.message, /no node has room for a session needing 1024 MiB of memory and 1 CPUs of limits \(host-a: 614 MiB and 3 CPUs free; host-bb: 819 MiB and 4 CPUs free\)/);
  }
  const cpuBound = describeNodes([node('a', { cpus: 1 })], loadsByNode([ours('s1', 'one', 'a', MiB, 3.5)], [], new Map()), options);
  try {
    choose(cpuBound, { memoryBytes: MiB, nanoCpus: 1e9 });
    assert.unreachable('expected a refusal');
  } catch (err) {
    assert.equal((err as EdgeechoError).details, { resource: 'cpus', asked: 1, free: 0.5 });
  }
});

test('constraints parse label=value, label==value and label!=value; anything else is refused', () => {
  assert.equal(parseConstraints(''), []);
  assert.equal(parseConstraints('a=b,c==d , e!=f'), [
    { label: 'a', value: 'b', equal: true },
    { label: 'c', value: 'd', equal: true },
    { label: 'e', value: 'f', equal: false },
  ]);
  assert.throws(() => parseConstraints('justalabel'), /EDGEECHO_SWARM_CONSTRAINTS: expected label=value/);
});

test.run();

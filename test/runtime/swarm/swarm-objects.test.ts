/** A role's state read from its service and task, and a role's service spec (no swarm needed). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nodeAddress, nodeView, latestTask, removedNode, serviceState, type SwarmNode, type SwarmService, type SwarmTask } from '../../../src/runtime/swarm/swarm-objects.js';
import { overlayNetworkSpec, pinnedNode, serviceSpec } from '../../../src/runtime/swarm/service-spec.js';
import type { ContainerSpec } from '../../../src/runtime/driver.js';

const service: SwarmService = {
  ID: 'svc1',
  CreatedAt: '2026-11-30T10:00:00.000000001Z',
  Spec: { Name: 'edgeecho-abc-stream', Labels: { 'io.edgeecho.managed': 'true', 'io.edgeecho.session': 'abc', 'io.edgeecho.role': 'stream', 'io.edgeecho.instance': 'i1' } },
};
const node = nodeView({ ID: 'n1', Spec: { Availability: 'active' }, Description: { Hostname: 'edge-1' }, Status: { State: 'ready', Addr: '10.1.2.3' } });

function task(state: string, extra: Partial<SwarmTask['Status']> = {}, more: Partial<SwarmTask> = {}): SwarmTask {
  return { ID: 't1', ServiceID: 'svc1', NodeID: 'n1', Status: { State: state, Timestamp: '2026-11-30T10:00:05Z', ...extra }, ...more };
}

test('no task yet: created, not running; labels read', () => {
  const s = serviceState(service, null, null);
  assert.equal([s.status, s.running, s.session, s.role, s.instance, s.created], ['created', false, 'abc', 'stream', 'i1', service.CreatedAt]);
});

test('running: published at the node address, address on the session network', () => {
  const t = task('running', { PortStatus: { Ports: [{ TargetPort: 7100, PublishedPort: 30001, PublishMode: 'host' }] } }, { NetworksAttachments: [{ Network: { Spec: { Name: 'edgeecho-abc-net' } }, Addresses: ['10.213.0.5/28'] }] });
  const s = serviceState(service, t, node);
  assert.is(s.running, true);
  assert.equal(s.published, { host: '10.1.2.3', port: 30001 });
  assert.is(s.address, '10.213.0.5');
  assert.is(s.startedAt, '2026-11-30T10:00:05Z');
});

test('ended: exit code and time; rejected: the manager\'s error names the node; a down node ends a live task', () => {
  const done = serviceState(service, task('complete', { ContainerStatus: { ExitCode: 0 } }), node);
  assert.equal([done.running, done.exitCode, done.finishedAt, done.ended], [false, 0, '2026-11-30T10:00:05Z', undefined]);
  const rejected = serviceState(service, task('rejected', { Err: 'No such image: edgeecho/probe:0.1.0' }), node);
  assert.is(rejected.exitCode, null);
  assert.is(rejected.ended, 'was rejected on node edge-1: No such image: edgeecho/probe:0.1.0');
  const lost = serviceState(service, task('running'), { ...node, state: 'down' });
  assert.equal([lost.running, lost.status, lost.ended], [false, 'node-down', 'its node edge-1 is down']);
});

test('unknown nodes keep the last report; removed nodes lose their tasks; a complete task without a code exited 0', () => {
  assert.is(serviceState(service, task('running'), { ...node, state: 'unknown' }).running, true);
  const removed = serviceState(service, task('running'), removedNode('n1'));
  assert.equal([removed.running, removed.ended], [false, 'its node n1 is removed']);
  assert.is(serviceState(service, task('complete'), node).exitCode, 0);
  assert.is(serviceState(service, task('failed'), node).exitCode, null);
});

test('shut down by the swarm (a drained node) is an ending; shut down by a stop is not', () => {
  const wanted = { ...service, Spec: { ...service.Spec, Mode: { Replicated: { Replicas: 1 } } } };
  const drained = serviceState(wanted, task('shutdown', { ContainerStatus: { ExitCode: 0 } }), { ...node, availability: 'drain' });
  assert.is(drained.ended, 'was shut down by the swarm on node edge-1 (node availability drain)');
  const stopped = { ...wanted, Spec: { ...wanted.Spec, Labels: { ...wanted.Spec.Labels, 'io.edgeecho.stopped': 'true' } } };
  const byStop = serviceState(stopped, task('shutdown', { ContainerStatus: { ExitCode: 0 } }), node);
  assert.equal([byStop.ended, byStop.exitCode], [undefined, 0]);
});

test('the published port is the spec\'s before the node reports it, and after the task ended', () => {
  const publishing = { ...service, Spec: { ...service.Spec, EndpointSpec: { Ports: [{ TargetPort: 7100, PublishedPort: 30007, PublishMode: 'host' }] } } };
  assert.equal(serviceState(publishing, task('starting'), node).published, { host: '10.1.2.3', port: 30007 });
  assert.equal(serviceState(publishing, task('complete'), node).published, { host: '10.1.2.3', port: 30007 });
  assert.is(serviceState(publishing, task('running'), { ...node, state: 'down' }).published, undefined);
});

test('the latest task is the last created', () => {
  const a = { ...task('shutdown'), ID: 'a', CreatedAt: '2026-11-30T10:00:00Z', Version: { Index: 50 } };
  const b = { ...task('running'), ID: 'b', CreatedAt: '2026-11-30T10:00:01Z', Version: { Index: 40 } };
  assert.is(latestTask([a, b])!.ID, 'b');
  assert.is(latestTask([])!, null);
});

test('a node is reached at its publish-host label, else its address, else its manager address', () => {
  const base: SwarmNode = { ID: 'n', Spec: { Labels: {} }, Status: { Addr: '0.0.0.0' }, ManagerStatus: { Addr: '172.17.0.1:2377' } };
  assert.is(nodeAddress(base), '172.17.0.1');
  assert.is(nodeAddress({ ...base, Status: { Addr: '10.0.0.9' } }), '10.0.0.9');
  assert.is(nodeAddress({ ...base, Spec: { Labels: { 'io.edgeecho.publish-host': 'edge-9.example' } } }), 'edge-9.example');
});

const spec: ContainerSpec = {
  session: 'abc',
  role: 'stream',
  name: 'edgeecho-abc-stream',
  image: 'edgeecho/stream:0.1.0',
  network: { id: 'net1', name: 'edgeecho-abc-net', subnet: '10.213.0.0/28' },
  aliases: ['stream'],
  env: { STREAM_PORT: '7100' },
  labels: { 'io.edgeecho.instance': 'i1' },
  publish: { port: 7100, hostIp: '127.0.0.1' },
  limits: { memoryBytes: 256 * 1024 * 1024, nanoCpus: 1e9, pids: 64 },
  node: 'n1',
};

test('a role\'s service: pinned, hardened, limited, never restarted, created with no replica, host-mode port', () => {
  const s = serviceSpec(spec, { endpointMode: 'dnsrr', stopGraceS: 5, hostPort: 30001 }) as any;
  assert.is(s.Name, 'edgeecho-abc-stream');
  assert.equal(s.Labels, { 'io.edgeecho.instance': 'i1', 'io.edgeecho.managed': 'true', 'io.edgeecho.session': 'abc', 'io.edgeecho.role': 'stream' });
  const c = s.TaskTemplate.ContainerSpec;
  assert.equal([c.User, c.Init, c.ReadOnly, c.CapabilityDrop, c.StopGracePeriod, c.Labels], ['1000:1000', true, true, ['ALL'], 5e9, s.Labels]);
  assert.equal(c.Env, ['STREAM_PORT=7100']);
  assert.is(c.Args, undefined);
  assert.equal(s.TaskTemplate.Resources.Limits, { NanoCPUs: 1e9, MemoryBytes: 256 * 1024 * 1024, Pids: 64 });
  assert.equal(s.TaskTemplate.RestartPolicy, { Condition: 'none', MaxAttempts: 0 });
  assert.equal(s.TaskTemplate.Placement.Constraints, ['node.id==n1']);
  assert.equal(s.TaskTemplate.Networks, [{ Target: 'net1', Aliases: ['stream'] }]);
  assert.equal(s.Mode, { Replicated: { Replicas: 0 } });
  assert.equal(s.EndpointSpec, { Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: 7100, PublishedPort: 30001, PublishMode: 'host' }] });
  assert.throws(() => serviceSpec(spec, { endpointMode: 'dnsrr', stopGraceS: 5 }), /given no host port/);
  assert.is(pinnedNode(s.TaskTemplate.Placement.Constraints), 'n1');
  assert.throws(() => serviceSpec({ ...spec, node: undefined } as ContainerSpec, { endpointMode: 'dnsrr', stopGraceS: 5, hostPort: 30001 }), /has no node/);
  const net = overlayNetworkSpec({ session: 'abc', name: 'edgeecho-abc-net', labels: {} }, '10.213.0.16/28') as any;
  assert.equal([net.Driver, net.Attachable, net.IPAM.Config], ['overlay', true, [{ Subnet: '10.213.0.16/28' }]]);
});

test.run();

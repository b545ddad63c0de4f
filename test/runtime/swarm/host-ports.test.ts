/** Host ports for published streams, chosen by the daemon per node (no swarm needed). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HostPorts, parsePortRange, portsInUse } from '../../../src/runtime/swarm/host-ports.js';
import type { SwarmService } from '../../../src/runtime/swarm/swarm-objects.js';

const publishing = (id: string, port: number, constraints?: string[]): SwarmService => ({
  ID: id,
  Spec: { Name: id, TaskTemplate: { Placement: { Constraints: constraints ?? [] } }, EndpointSpec: { Ports: [{ TargetPort: 7100, PublishedPort: port, PublishMode: 'host' }] } },
});

test('ports in use on a node: services pinned there and unpinned ones; other nodes\' pins are free', () => {
  const used = portsInUse([publishing('a', 30000, ['node.id==n1']), publishing('b', 30001, ['node.id==n2']), publishing('c', 30002)], 'n1');
  assert.equal([...used].sort(), [30000, 30002]);
});

test('a port is taken past those in use and those held here, and freed again', () => {
  const ports = new HostPorts({ first: 30000, last: 30003 });
  assert.is(ports.take('n1', 'x', new Set([30000])), 30001);
  assert.is(ports.take('n1', 'y', new Set([30000])), 30002);
  assert.is(ports.take('n2', 'z', new Set()), 30003);
  ports.release('x');
  assert.is(ports.take('n1', 'w', new Set([30000, 30002, 30003])), 30001);
  assert.throws(() => ports.take('n1', 'v', new Set([30000, 30002, 30003])), /no free host port left on node n1 in 30000-30003 \(EDGEECHO_SWARM_PORTS\)/);
});

test('the range parses first-last within 1024-65535', () => {
  assert.equal(parsePortRange('30000-32767'), { first: 30000, last: 32767 });
  for (const bad of ['80-90', '3000', '40000-30000', '30000-70000']) assert.throws(() => parsePortRange(bad), /EDGEECHO_SWARM_PORTS/);
});

test.run();

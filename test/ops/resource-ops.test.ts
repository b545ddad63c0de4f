import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resourceOps } from '../../src/ops/resource-ops.js';
import { OpRegistry, validateArgs } from '../../src/daemon/op-registry.js';
import type { ResourceSnapshot } from '../../src/resources/tracker.js';
import { silentLogger } from '../../src/log.js';

const snap = (at: number): ResourceSnapshot => ({
  at,
  host: { cpus: 2, cpuPercent: 1, memoryTotalBytes: 2, memoryAvailableBytes: 1, load: [0, 0, 0], dataDir: '/d', diskFreeBytes: 1, diskTotalBytes: 2 },
  engine: { name: 'fake', reachable: true, running: 0, containers: 0, networks: 0 },
  sessions: [],
});

const ctx = { id: 1, signal: new AbortController().signal, log: silentLogger, conn: { id: 'c', peer: 'p' }, status() {}, event() {} };

test('resources answers the latest snapshot with admission state, sampling only when none exists or fresh is asked', async () => {
  let latest: ResourceSnapshot | null = null;
  let samples = 0;
  const tracker = { latest: () => latest, sample: async () => (latest = snap(++samples)) };
  const admission = { state: () => ({ sessions: 1, maxSessions: 2, reservedMemoryBytes: 3, capacityMemoryBytes: 4, reservedCpus: 1, capacityCpus: 8 }) };
  const registry = new OpRegistry();
  for (const op of resourceOps({ tracker, admission })) registry.register(op);
  const op = registry.get('resources')!;
  const first = (await op.handler(validateArgs(op.args, {}), ctx)) as ResourceSnapshot & { admission: unknown };
  assert.is(first.at, 1);
  assert.equal(first.admission, admission.state());
  const second = (await op.handler(validateArgs(op.args, {}), ctx)) as ResourceSnapshot;
  assert.is(second.at, 1);
  const third = (await op.handler(validateArgs(op.args, { fresh: true }), ctx)) as ResourceSnapshot;
  assert.is(third.at, 2);
  assert.throws(() => validateArgs(op.args, { fresh: 'yes' }), /args.fresh: expected boolean/);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { resourceOps, type ResourcesResult } from '../../src/ops/resource-ops.js';
import { OpRegistry, validateArgs } from '../../src/ops/contract.js';
import type { AdmissionState } from '../../src/resources/admission.js';
import type { ResourceSnapshot } from '../../src/resources/tracker.js';
import { silentLogger } from '../../src/log.js';

const none = () => ({ containers: 0, running: 0, networks: 0 });
const snap = (at: number): ResourceSnapshot => ({
  at,
  host: { cpus: 2, cpuPercent: 1, memoryTotalBytes: 2, memoryAvailableBytes: 1, load: [0, 0, 0], dataDir: '/d', diskFreeBytes: 1, diskTotalBytes: 2 },
  engine: { name: 'fake', reachable: true, running: 0, containers: 0, networks: 0, foreign: none(), unlabelled: none() },
  sessions: [],
});

const ctx = { id: 1, signal: new AbortController().signal, log: silentLogger, conn: { id: 'c', peer: 'p' }, status() {}, event() {} };

function resourcesOp(fake: { latest(): ResourceSnapshot | null; sample(): Promise<ResourceSnapshot> }, admission?: { state(): AdmissionState }, instance?: string) {
  const tracker = { sampleFresh: () => fake.sample(), ...fake };
  const registry = new OpRegistry();
  for (const op of resourceOps({ tracker, ...(admission ? { admission } : {}), ...(instance ? { instance } : {}) })) registry.register(op);
  const op = registry.get('resources')!;
  return (args: Record<string, unknown> = {}) => op.handler(validateArgs(op.args, args), ctx) as Promise<ResourcesResult>;
}

test('resources answers the latest snapshot with admission state, sampling only when none exists or fresh is asked', async () => {
  let latest: ResourceSnapshot | null = null;
  let samples = 0;
  const tracker = { latest: () => latest, sample: async () => (latest = snap(++samples)) };
  const admission = { state: () => ({ sessions: 1, maxSessions: 2, reservedMemoryBytes: 3, capacityMemoryBytes: 4, reservedCpus: 1, capacityCpus: 8 }) };
  const call = resourcesOp(tracker, admission);
  const first = await call();
  assert.is(first.at, 1);
  assert.equal(first.admission, { sessions: 1, max_sessions: 2, reserved_memory_bytes: 3, capacity_memory_bytes: 4, reserved_cpus: 1, capacity_cpus: 8 });
  assert.is((await call()).at, 1);
  assert.is((await call({ fresh: true })).at, 2);
  assert.throws(() => validateArgs(resourceOps({ tracker: { ...tracker, sampleFresh: tracker.sample } })[0]!.args, { fresh: 'yes' }), /args.fresh: expected boolean/);
});

test('the answer is snake_case, exactly the "resources result" vector of protocol/vectors/frames.json', async () => {
  const vectors = JSON.parse(readFileSync(new URL('../../protocol/vectors/frames.json', import.meta.url), 'utf8')) as Array<{ name: string; json: { data: ResourcesResult } }>;
  const expected = vectors.find((v) => v.name === 'resources result')!.json.data;
  const w = expected;
  // The same figures as the tracker and admission hold them, in TypeScript's camelCase.
  const snapshot: ResourceSnapshot = {
    at: w.at,
    host: {
      cpus: w.host.cpus,
      cpuPercent: w.host.cpu_percent,
      memoryTotalBytes: w.host.memory_total_bytes,
      memoryAvailableBytes: w.host.memory_available_bytes,
      load: w.host.load,
      dataDir: w.host.data_dir,
      diskFreeBytes: w.host.disk_free_bytes,
      diskTotalBytes: w.host.disk_total_bytes,
    },
    engine: { ...w.engine, foreign: { ...w.engine.foreign }, unlabelled: { ...w.engine.unlabelled } },
    sessions: w.sessions.map((s) => ({ session: s.session, containers: s.containers, cpuPercent: s.cpu_percent, memoryBytes: s.memory_bytes, memoryLimitBytes: s.memory_limit_bytes })),
  };
  const a = w.admission!;
  const state: AdmissionState = {
    sessions: a.sessions,
    maxSessions: a.max_sessions,
    reservedMemoryBytes: a.reserved_memory_bytes,
    capacityMemoryBytes: a.capacity_memory_bytes,
    reservedCpus: a.reserved_cpus,
    capacityCpus: a.capacity_cpus,
  };
  const answer = await resourcesOp({ latest: () => snapshot, sample: async () => snapshot }, { state: () => state }, w.instance)();
  assert.equal(answer, expected);
  assert.equal(Object.keys(answer), ['at', 'instance', 'host', 'engine', 'sessions', 'admission']);
});

test('without admission the key is absent; an unreachable engine carries its error; the first sample has cpu_percent null', async () => {
  const s = snap(5);
  s.host.cpuPercent = null;
  s.engine = { name: 'docker', reachable: false, running: 0, containers: 0, networks: 0, foreign: none(), unlabelled: none(), error: 'connect ENOENT /var/run/docker.sock' };
  const answer = await resourcesOp({ latest: () => s, sample: async () => s })();
  assert.not.ok('admission' in answer);
  assert.not.ok('instance' in answer);
  assert.is(answer.host.cpu_percent, null);
  assert.equal(answer.engine, { name: 'docker', reachable: false, running: 0, containers: 0, networks: 0, foreign: none(), unlabelled: none(), error: 'connect ENOENT /var/run/docker.sock' });
  const ok = await resourcesOp({ latest: () => snap(6), sample: async () => snap(6) })();
  assert.not.ok('error' in ok.engine);
});

test.run();

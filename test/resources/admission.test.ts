import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Admission, admissionOptions, type AdmissionOptions } from '../../src/resources/admission.js';
import { rolesOf } from '../../src/workflow/session-spec.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { loadConfig } from '../../src/config.js';

const MiB = 1024 * 1024;

function options(overrides: Partial<AdmissionOptions> = {}): AdmissionOptions {
  return {
    capacityMemory: 1024 * MiB,
    capacityCpus: 4,
    minFreeMemory: 256 * MiB,
    maxSessions: 10,
    limits: {
      probe: { memoryBytes: 128 * MiB, nanoCpus: 0.5e9, pids: 64 },
      stream: { memoryBytes: 256 * MiB, nanoCpus: 1e9, pids: 64 },
      segmentation: { memoryBytes: 128 * MiB, nanoCpus: 0.5e9, pids: 64 },
    },
    availableMemory: () => 8192 * MiB,
    ...overrides,
  };
}

function refusal(fn: () => unknown): EdgeechoError {
  let caught: unknown = null;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.instance(caught, EdgeechoError, 'expected a refusal, the call succeeded');
  return caught as EdgeechoError;
}

test('a session reserves the sum of its roles\' limits and release gives it back once', () => {
  const a = new Admission(options());
  const r = a.admit('s1', rolesOf('segmented'));
  assert.is(r.memoryBytes, 512 * MiB);
  assert.is(r.nanoCpus, 2e9);
  assert.equal(a.state(), { sessions: 1, maxSessions: 10, reservedMemoryBytes: 512 * MiB, capacityMemoryBytes: 1024 * MiB, reservedCpus: 2, capacityCpus: 4 });
  r.release();
  r.release();
  assert.is(a.state().reservedMemoryBytes, 0);
  assert.is(a.state().sessions, 0);
});

test('memory capacity: refused with resource, asked and free', () => {
  const a = new Admission(options());
  a.admit('s1', rolesOf('segmented'));
  a.admit('s2', rolesOf('plain'));
  const err = refusal(() => a.admit('s3', rolesOf('plain')));
  assert.is(err.code, 'RESOURCE_EXHAUSTED');
  assert.equal(err.details, { resource: 'memory', asked: 384 * MiB, free: 128 * MiB });
  assert.match(err.message, /EDGEECHO_CAPACITY_MEMORY/);
  assert.is(a.state().sessions, 2);
});

test('CPU capacity is checked in CPUs', () => {
  const a = new Admission(options({ capacityCpus: 2, capacityMemory: 100_000 * MiB }));
  a.admit('s1', rolesOf('plain'));
  const err = refusal(() => a.admit('s2', rolesOf('plain')));
  assert.equal(err.details, { resource: 'cpus', asked: 1.5, free: 0.5 });
});

test('host available memory below min_free refuses even with capacity left', () => {
  let available: number | null = 100 * MiB;
  const a = new Admission(options({ availableMemory: () => available }));
  const err = refusal(() => a.admit('s1', rolesOf('plain')));
  assert.equal(err.details, { resource: 'host_memory', asked: 384 * MiB, free: 100 * MiB, min_free: 256 * MiB });
  available = null; // not sampled yet: no basis to refuse
  a.admit('s1', rolesOf('plain'));
});

test('max_sessions live sessions refuse the next; a release makes room', () => {
  const a = new Admission(options({ maxSessions: 2, capacityMemory: 100_000 * MiB, capacityCpus: 100 }));
  const r1 = a.admit('s1', ['stream']);
  a.admit('s2', ['stream']);
  assert.equal(refusal(() => a.admit('s3', ['stream'])).details, { resource: 'sessions', asked: 1, free: 0 });
  r1.release();
  a.admit('s3', ['stream']);
});

test('admitting the same session twice is a CONFLICT', () => {
  const a = new Admission(options());
  a.admit('s1', ['probe']);
  assert.is(refusal(() => a.admit('s1', ['probe'])).code, 'CONFLICT');
});

test('adopted sessions re-reserve without refusal and count against new ones', () => {
  const a = new Admission(options({ maxSessions: 1 }));
  const stale = a.admit('s1', ['probe']);
  a.adopt('s1', rolesOf('segmented'));
  stale.release(); // the pre-adoption handle must not drop the adopted reservation
  assert.is(a.state().reservedMemoryBytes, 512 * MiB);
  a.adopt('s2', rolesOf('segmented')); // over max_sessions, still adopted
  assert.is(a.state().sessions, 2);
  assert.is(refusal(() => a.admit('s3', ['probe'])).details!.resource, 'sessions');
});

test('retain releases reservations of sessions no longer live', () => {
  const a = new Admission(options());
  a.admit('s1', ['probe']);
  a.admit('s2', ['stream']);
  assert.equal(a.retain(new Set(['s2'])), ['s1']);
  assert.is(a.state().reservedMemoryBytes, 256 * MiB);
  assert.ok(a.has('s2') && !a.has('s1'));
});

test('admissionOptions takes capacity and role limits from config', () => {
  const { config } = loadConfig({ env: { EDGEECHO_CAPACITY_MEMORY: '1g', EDGEECHO_LIMITS_STREAM: 'memory=64m,cpus=2,pids=32' } });
  const o = admissionOptions(config, () => null);
  assert.is(o.capacityMemory, 1024 * MiB);
  assert.equal(o.limits.stream, { memoryBytes: 64 * MiB, nanoCpus: 2e9, pids: 32 });
});

test.run();

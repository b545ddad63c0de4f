/**
 * What the session ops put on the wire matches protocol/SPEC.md ("Session and resource ops") and its vectors:
 * snake_case keys everywhere, every step that starts also ends, and the vectors are what the code produces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { FakeRuntime } from '../support/fake-runtime.js';
import { callOp, opContext } from '../support/op-context.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { validateArgs } from '../../src/ops/contract.js';
import { Admission, admissionOptions } from '../../src/resources/admission.js';
import type { SessionUsage } from '../../src/resources/tracker.js';
import { SessionBus } from '../../src/sessions/events.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { sessionOps } from '../../src/ops/session-ops.js';
import { SessionLifecycle } from '../../src/sessions/lifecycle.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { parseRequest } from '../../protocol/messages.js';

type Frame = Record<string, unknown>;
const vectors = JSON.parse(readFileSync(new URL('../../protocol/vectors/frames.json', import.meta.url), 'utf8')) as Array<{ name: string; json: Frame }>;
const vector = (name: string): Frame => {
  const v = vectors.find((x) => x.name === name);
  if (!v) throw new Error(`protocol/vectors/frames.json: expected a vector named "${name}"`);
  return v.json;
};

const MiB = 1024 * 1024;
const { config } = loadConfig({ env: { EDGEECHO_CAPACITY_MEMORY: '1g', EDGEECHO_CAPACITY_CPUS: '64', EDGEECHO_MIN_FREE_MEMORY: '0' } });

function setup(options: { usage?: (session: string) => SessionUsage | undefined; maxPayloadBytes?: number } = {}) {
  const driver = new FakeRuntime();
  const store = openSessionStore(':memory:');
  const admission = new Admission(admissionOptions(config, () => null));
  const opsConfig = { ...config, ...(options.maxPayloadBytes ? { maxPayloadBytes: options.maxPayloadBytes } : {}) };
  const lifecycle = new SessionLifecycle({ driver, store, bus: new SessionBus(), admission, config: opsConfig, log: silentLogger });
  const ops = sessionOps({ lifecycle, store, config: opsConfig, ...(options.usage ? { usage: options.usage } : {}) });
  return { driver, store, admission, ops };
}

const fails = (p: Promise<unknown>): Promise<EdgeechoError> =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: EdgeechoError) => e,
  );

/** Every map key below `value`, with its path, that is not lower snake_case. */
function camelKeys(value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => camelKeys(v, `${path}[${i}]`));
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => [...(/^[a-z][a-z0-9_]*$/.test(k) ? [] : [`${path}.${k}`]), ...camelKeys(v, `${path}.${k}`)]);
}

/** Each step that reported `started` must report `done` or `failed` afterwards. */
function unclosedSteps(statuses: Frame[]): string[] {
  const open = new Set<string>();
  for (const s of statuses) {
    if (s.state === 'started') open.add(String(s.step));
    else if (s.state === 'done' || s.state === 'failed') open.delete(String(s.step));
  }
  return [...open];
}

test('every key the session ops send (status frames, results, errors) is snake_case', async () => {
  const usage = (session: string): SessionUsage => ({ session, containers: 3, cpuPercent: 4.5, memoryBytes: 10 * MiB, memoryLimitBytes: 512 * MiB });
  const { ops, driver } = setup({ usage });
  const sent: Array<{ what: string; value: unknown }> = [];
  const createCtx = opContext(1);
  const created = await callOp(ops, 'session.create', { mode: 'segmented', count: 5, payload_bytes: 32, rate: 10 }, createCtx);
  sent.push({ what: 'create statuses', value: createCtx.statuses }, { what: 'create result', value: created });
  const got = await callOp(ops, 'session.get', { id: created.id });
  assert.equal(got.usage, { session: created.id, containers: 3, cpu_percent: 4.5, memory_bytes: 10 * MiB, memory_limit_bytes: 512 * MiB });
  sent.push({ what: 'get', value: got }, { what: 'list', value: await callOp(ops, 'session.list', {}) });
  const watchCtx = opContext(2);
  const watching = callOp(ops, 'session.watch', { id: created.id }, watchCtx);
  const stopCtx = opContext(3);
  sent.push({ what: 'stop result', value: await callOp(ops, 'session.stop', { id: created.id }, stopCtx) });
  sent.push({ what: 'watch result', value: await watching }, { what: 'watch statuses', value: watchCtx.statuses }, { what: 'stop statuses', value: stopCtx.statuses });

  driver.failures.set('waitReady:stream', new EdgeechoError('INTERNAL', 'stream exited with code 1', { container: 'x', exit_code: 1, oom_killed: false }));
  const failCtx = opContext(4);
  const err = await fails(callOp(ops, 'session.create', { mode: 'plain', count: 1 }, failCtx));
  sent.push({ what: 'failed create statuses', value: failCtx.statuses }, { what: 'failed create error', value: err.toWire() });
  assert.ok(failCtx.statuses.some((s) => String(s.step).startsWith('rollback:')), 'the failure was rolled back');

  for (const { what, value } of sent) assert.equal(camelKeys(value), [], what);
});

test('session.create: the `session` step closes too, done on success and failed on rollback', async () => {
  const { ops, driver } = setup();
  const ok = opContext();
  const r = await callOp(ops, 'session.create', { mode: 'plain', count: 1 }, ok);
  assert.equal(unclosedSteps(ok.statuses), []);
  const last = ok.statuses[ok.statuses.length - 1]!;
  assert.is(last.step, 'session');
  assert.is(last.state, 'done');
  assert.equal(last.details, { state: 'ready', location: r.location });
  assert.ok(ok.statuses.every((s) => typeof s.elapsed_ms === 'number'), 'every frame carries elapsed_ms');

  driver.failures.set('createContainer:stream', new EdgeechoError('RUNTIME_UNAVAILABLE', 'engine refused'));
  const bad = opContext();
  await fails(callOp(ops, 'session.create', { mode: 'plain', count: 1 }, bad));
  assert.equal(unclosedSteps(bad.statuses), []);
  const end = bad.statuses[bad.statuses.length - 1]!;
  assert.equal([end.step, end.state, (end.error as { code: string }).code], ['session', 'failed', 'RUNTIME_UNAVAILABLE']);
});

test('vectors: the session.create request is valid; the status frame has the fields the workflow sends', async () => {
  const request = parseRequest(vector('session.create request'));
  assert.ok(request.ok);
  const { ops } = setup();
  const create = ops.find((o) => o.name === 'session.create')!;
  assert.equal(validateArgs(create.args, request.ok ? request.request.args : undefined), { mode: 'segmented', count: 1000, payload_bytes: 256, rate: 500 });

  const ctx = opContext(3);
  await callOp(ops, 'session.create', { mode: 'plain', count: 1 }, ctx);
  const readyProbe = ctx.statuses.find((s) => s.step === 'ready probe' && s.state === 'done')!;
  assert.equal(Object.keys({ id: 3, kind: 'status', ...readyProbe }).sort(), Object.keys(vector('workflow status frame: a step done, with details')).sort());
  const started = ctx.statuses.find((s) => s.step === 'create probe' && s.state === 'started')!;
  const { session: _s, ...startedFields } = started;
  assert.equal(Object.keys({ id: 3, kind: 'status', ...startedFields }).sort(), Object.keys(vector('status frame')).sort());
});

test('vectors: an admission refusal is exactly the RESOURCE_EXHAUSTED error frame', async () => {
  const { ops, admission, driver } = setup();
  // 1 GiB of capacity, 768 MiB held: a segmented session (128 + 256 + 128 MiB of limits) does not fit.
  admission.admit('heldheldaa', ['probe', 'stream', 'segmentation']);
  admission.admit('heldheldbb', ['stream']);
  const ctx = opContext(3);
  const err = await fails(callOp(ops, 'session.create', { mode: 'segmented', count: 1 }, ctx));
  assert.equal({ id: 3, kind: 'error', error: err.toWire() }, vector('RESOURCE_EXHAUSTED error frame: admission refused session.create'));
  assert.equal(driver.calls, [], 'nothing was created');
  assert.equal(ctx.statuses.map((s) => `${s.step}:${s.state}`), ['session:started', 'admit:started', 'admit:failed', 'session:failed']);
});

test('session.create: the default payload_bytes never exceeds EDGEECHO_MAX_PAYLOAD_BYTES', async () => {
  const { ops, store } = setup({ maxPayloadBytes: 16 });
  const r = await callOp(ops, 'session.create', { mode: 'plain', count: 1 });
  assert.is(store.get(r.id)!.payloadBytes, 16);
  const dflt = setup();
  const d = await callOp(dflt.ops, 'session.create', { mode: 'plain', count: 1 });
  assert.is(dflt.store.get(d.id)!.payloadBytes, 64);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { FakeRuntime } from '../support/fake-runtime.js';
import { callOp } from '../support/op-context.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { Metrics, metricsOp } from '../../src/metrics/metrics.js';
import { sessionOps } from '../../src/ops/session-ops.js';
import { SessionBus } from '../../src/sessions/events.js';
import { SessionLifecycle } from '../../src/sessions/lifecycle.js';
import { openSessionStore } from '../../src/sessions/sqlite-store.js';
import { LIVE_STATES } from '../../src/sessions/types.js';
import { EdgeechoError } from '../../protocol/errors.js';

const { config } = loadConfig({ env: {} });

function setup() {
  const driver = new FakeRuntime();
  const store = openSessionStore(':memory:');
  const bus = new SessionBus();
  let refuse = false;
  const admission = {
    admit: () => {
      if (refuse) throw new EdgeechoError('RESOURCE_EXHAUSTED', 'test: no memory', { resource: 'memory', asked: 1, free: 0 });
    },
    release: () => undefined,
    adopt: () => undefined,
  };
  const lifecycle = new SessionLifecycle({ driver, store, bus, admission, config, log: silentLogger });
  const metrics = new Metrics({ bus, liveSessions: () => store.list({ states: LIVE_STATES }) });
  const ops = [...sessionOps({ lifecycle, store, config }), metricsOp(metrics)];
  return { ops, metrics, refuseNext: () => (refuse = true) };
}

async function values(metrics: Metrics): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await metrics.text()).split('\n')) {
    const m = /^(\S+) (\S+)$/.exec(line);
    if (m && !line.startsWith('#')) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

test('the bus moves the session metrics: created, live by state, steps, ready, finished, refusals, rollbacks', async () => {
  const { ops, metrics, refuseNext } = setup();
  const { id } = await callOp(ops, 'session.create', { mode: 'plain', count: 10 });
  let v = await values(metrics);
  assert.is(v.get('edgeecho_sessions_created_total{mode="plain"}'), 1);
  assert.is(v.get('edgeecho_sessions_live{state="ready"}'), 1);
  assert.is(v.get('edgeecho_session_ready_seconds_count'), 1);
  assert.is(v.get('edgeecho_step_duration_seconds_count{step="admit",state="done"}'), 1);

  await callOp(ops, 'session.stop', { id });
  refuseNext();
  const refused = await callOp(ops, 'session.create', { mode: 'segmented', count: 10 }).then(() => null, (e: EdgeechoError) => e);
  assert.is(refused?.code, 'RESOURCE_EXHAUSTED');
  v = await values(metrics);
  assert.is(v.get('edgeecho_sessions_live{state="ready"}'), 0);
  assert.is(v.get('edgeecho_sessions_finished_total{mode="plain",outcome="stopped"}'), 1);
  assert.is(v.get('edgeecho_sessions_finished_total{mode="segmented",outcome="failed"}'), 1);
  assert.is(v.get('edgeecho_admission_refusals_total{resource="memory"}'), 1);
  assert.is(v.get('edgeecho_rollbacks_total{outcome="failed"}'), 1);
  assert.is(v.get('edgeecho_rollbacks_total{outcome="stopped"}'), undefined, 'a stop of a ready session is no rollback');
  assert.is(v.get('edgeecho_reaping_latency_seconds_count'), 0, 'stopped sessions are not reaped');
  metrics.close();
});

test('the metrics op answers the vector\'s shape with the same text a scrape gets', async () => {
  const { ops, metrics } = setup();
  const answer = await callOp(ops, 'metrics', {});
  const vectors = JSON.parse(readFileSync(new URL('../../protocol/vectors/frames.json', import.meta.url), 'utf8')) as Array<{ name: string; json: { data: object } }>;
  const shape = vectors.find((x) => x.name === 'metrics result')!.json.data;
  assert.equal(Object.keys(answer).sort(), Object.keys(shape).sort());
  assert.is(answer.content_type, metrics.contentType);
  assert.match(answer.text, /^# HELP edgeecho_sessions_created_total /m);
  metrics.close();
});

test.run();

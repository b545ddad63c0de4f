/**
 * Metrics after real sessions on a real daemon: scrape GET /metrics (EDGEECHO_METRICS) before and after, and
 * check that each counter moved by exactly what the sessions did: two completed, one refused by admission
 * (a rollback), their steps, time to ready and reaping. The `metrics` op and `edgeecho metrics` answer the same
 * text; `edgeecho health` says healthy.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, type Client } from '../../src/client/index.js';
import { dockerOrSkip } from '../support/docker.js';
import { cleanupDaemons, runLabel, startDaemonProcess, type DaemonProcess, type SessionView } from '../../support/daemon-process.js';

const LABEL = runLabel('metrics');
const docker = await dockerOrSkip('integration/metrics');
const BIN = fileURLToPath(new URL('../../bin/edgeecho.js', import.meta.url));

/** `name{labels} value` lines as a map; labels kept in their printed order. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*(?:\{[^}]*\})?) (\S+)$/i.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.is(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', 'text/plain');
  return parseMetrics(await res.text());
}

if (docker) {
  test('counters move by what real sessions did; the op, the CLI and the HTTP listener agree; health is 0', async () => {
    let daemon: DaemonProcess | undefined;
    let client: Client | undefined;
    try {
      daemon = await startDaemonProcess({ label: LABEL, env: { EDGEECHO_METRICS: '127.0.0.1:0', EDGEECHO_MAX_SESSIONS: '1' } });
      const listening = await daemon.waitForLog((l) => l.msg === 'metrics listening', 5000);
      const metricsPort = listening.port as number;
      const before = await scrape(metricsPort);
      const delta = (after: Map<string, number>, key: string): number => (after.get(key) ?? 0) - (before.get(key) ?? 0);

      client = await connect({ port: daemon.port });
      // a session that lasts ~2 s holds the only admission slot while the second create is refused
      const slow = client.call<{ id: string }>('session.create', { mode: 'segmented', count: 40, rate: 20 });
      const slowId = (await slow.result).id;
      const refused = await client.request('session.create', { mode: 'segmented', count: 10 }).then(
        () => null,
        (err: { code: string; details?: { resource?: string } }) => err,
      );
      assert.is(refused?.code, 'RESOURCE_EXHAUSTED');
      assert.is(refused?.details?.resource, 'sessions');
      assert.is((await client.request<SessionView>('session.watch', { id: slowId }, { timeoutMs: 60_000 })).state, 'completed');
      const fast = await client.request<{ id: string }>('session.create', { mode: 'segmented', count: 100 });
      assert.is((await client.request<SessionView>('session.watch', { id: fast.id }, { timeoutMs: 60_000 })).state, 'completed');

      const after = await scrape(metricsPort);
      assert.is(delta(after, 'edgeecho_sessions_created_total{mode="segmented"}'), 3);
      assert.is(delta(after, 'edgeecho_sessions_finished_total{mode="segmented",outcome="completed"}'), 2);
      assert.is(delta(after, 'edgeecho_sessions_finished_total{mode="segmented",outcome="failed"}'), 1);
      assert.is(delta(after, 'edgeecho_rollbacks_total{outcome="failed"}'), 1);
      assert.is(delta(after, 'edgeecho_admission_refusals_total{resource="sessions"}'), 1);
      assert.is(delta(after, 'edgeecho_step_duration_seconds_count{step="admit",state="done"}'), 2);
      assert.is(delta(after, 'edgeecho_step_duration_seconds_count{step="admit",state="failed"}'), 1);
      assert.is(delta(after, 'edgeecho_session_ready_seconds_count'), 2);
      assert.is(delta(after, 'edgeecho_reaping_latency_seconds_count'), 2);
      assert.ok((after.get('edgeecho_reaping_latency_seconds_sum') ?? 0) < 2 * 15, 'reaped within seconds of the exits');
      for (const state of ['creating', 'ready', 'stopping']) assert.is(after.get(`edgeecho_sessions_live{state="${state}"}`), 0, state);
      assert.is(after.get('edgeecho_control_connections'), 1);
      assert.ok(delta(after, 'edgeecho_frames_in_total') >= 6, 'hello, three creates, two watches');
      assert.ok(delta(after, 'edgeecho_frames_out_total') > delta(after, 'edgeecho_frames_in_total'), 'status frames outnumber requests');
      assert.is(after.get('edgeecho_auth_failures_total'), 0);
      assert.ok((after.get('edgeecho_process_resident_memory_bytes') ?? 0) > 10e6, 'process defaults are there');

      const viaOp = await client.request<{ text: string }>('metrics', {});
      assert.is(parseMetrics(viaOp.text).get('edgeecho_sessions_created_total{mode="segmented"}'), after.get('edgeecho_sessions_created_total{mode="segmented"}'));
      const env = { ...process.env, EDGEECHO_FROM_SOURCE: '1', EDGEECHO_HOST: '127.0.0.1', EDGEECHO_PORT: String(daemon.port) };
      const cli = spawnSync(process.execPath, [BIN, 'metrics'], { env, encoding: 'utf8', timeout: 30_000 });
      assert.is(cli.status, 0, cli.stderr);
      assert.match(cli.stdout, /^edgeecho_sessions_finished_total\{mode="segmented",outcome="completed"\} 2$/m);
      const health = spawnSync(process.execPath, [BIN, 'health'], { env, encoding: 'utf8', timeout: 30_000 });
      assert.is(health.status, 0, health.stderr);
      assert.match(health.stdout, /^healthy: daemon .* engine reachable/);
    } finally {
      await client?.close().catch(() => undefined);
      await cleanupDaemons(docker, LABEL, [daemon], []);
    }
  });
}

test.run();

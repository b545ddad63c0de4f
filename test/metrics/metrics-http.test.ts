import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TokenAuth } from '../../src/daemon/auth.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { parseMetricsAddress, serveMetrics } from '../../src/metrics/metrics-http.js';

const TOKEN = 'a-token-of-twenty-chars';

test('EDGEECHO_METRICS: empty is off; host:port and [v6]:port parse; anything else names the setting', () => {
  assert.is(parseMetricsAddress(''), null);
  assert.equal(parseMetricsAddress('127.0.0.1:9411'), { host: '127.0.0.1', port: 9411 });
  assert.equal(parseMetricsAddress('[::1]:0'), { host: '::1', port: 0 });
  for (const bad of ['9411', '127.0.0.1', 'host:99999', 'a b:1']) assert.throws(() => parseMetricsAddress(bad), /EDGEECHO_METRICS: expected host:port/, bad);
});

test('a non-loopback address without a token is refused', async () => {
  try {
    await serveMetrics({ address: { host: '0.0.0.0', port: 0 }, metrics: new Metrics(), auth: null, log: silentLogger });
    assert.unreachable('must refuse');
  } catch (err) {
    assert.match((err as Error).message, /refusing to listen on 0\.0\.0\.0 \(EDGEECHO_METRICS\) without authentication/);
  }
});

test('with a token: 401 without it or with a wrong one, 200 with the text and its content type with it; only GET /metrics', async () => {
  const auth = new TokenAuth({ token: TOKEN, maxFailures: 100, sleep: async () => undefined });
  const server = await serveMetrics({ address: { host: '127.0.0.1', port: 0 }, metrics: new Metrics(), auth, log: silentLogger });
  const url = `http://127.0.0.1:${server.address.port}`;
  try {
    assert.is((await fetch(`${url}/metrics`)).status, 401);
    assert.is((await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer nope' } })).status, 401);
    const ok = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.is(ok.status, 200);
    assert.match(ok.headers.get('content-type') ?? '', 'text/plain; version=0.0.4');
    assert.match(await ok.text(), /^edgeecho_process_cpu_user_seconds_total \d/m);
    assert.is((await fetch(`${url}/other`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
    assert.is((await fetch(`${url}/metrics`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status, 405);
  } finally {
    await server.close();
  }
});

test.run();

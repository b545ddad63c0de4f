import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyStatus, COLORS, failureReason, formatDuration, initialState, paletteFor, PLAIN, redraw, renderError, renderResult, renderSteps, SPINNER_FRAMES } from '../../src/cli/live-view.js';
import { describeStatus, formatAge, renderSession, renderSessionTable, sessionsOf } from '../../src/cli/session.js';
import { formatBytes, renderResources } from '../../src/cli/resources.js';

const frames = [
  { id: 1, kind: 'status', step: 'admission', state: 'started', elapsed_ms: 0 },
  { id: 1, kind: 'status', step: 'admission', state: 'done', elapsed_ms: 3 },
  { id: 1, kind: 'status', step: 'network', state: 'started', elapsed_ms: 0 },
  { id: 1, kind: 'status', step: 'network', state: 'done', elapsed_ms: 120 },
  { id: 1, kind: 'status', step: 'probe', state: 'started', elapsed_ms: 0 },
];

test('steps keep their line; a running step spins with the time since it was seen', () => {
  let state = initialState();
  frames.forEach((f, i) => (state = applyStatus(state, f, 1000 + i * 10)));
  assert.equal(renderSteps(state, 2540, 0), ['✔ admission  3 ms', '✔ network    120 ms', '⠋ probe      1.5 s']);
  assert.is(renderSteps(state, 2540, 1)[2], '⠙ probe      1.5 s');
  assert.is(renderSteps(state, 2540, SPINNER_FRAMES.length)[2], '⠋ probe      1.5 s', 'the spinner wraps');
  state = applyStatus(state, { step: 'probe', state: 'failed', elapsed_ms: 30_000, details: { error: { code: 'TIMEOUT', message: 'probe not ready within 30000 ms' } } }, 2600);
  assert.equal(renderSteps(state, 9999, 3), ['✔ admission  3 ms', '✔ network    120 ms', '✖ probe      30.0 s  TIMEOUT: probe not ready within 30000 ms']);
});

test('workflow engine frames: a finished step shows its own duration_ms, a failed one its top-level error', () => {
  let state = initialState();
  state = applyStatus(state, { id: 3, kind: 'status', session: 's1', step: 'network', state: 'started', elapsed_ms: 1 }, 0);
  state = applyStatus(state, { id: 3, kind: 'status', session: 's1', step: 'network', state: 'done', elapsed_ms: 91, duration_ms: 90 }, 90);
  state = applyStatus(state, { id: 3, kind: 'status', session: 's1', step: 'ready probe', state: 'started', elapsed_ms: 795 }, 795);
  state = applyStatus(
    state,
    { id: 3, kind: 'status', session: 's1', step: 'ready probe', state: 'failed', elapsed_ms: 1200, duration_ms: 405, error: { code: 'INTERNAL', message: 'probe exited with code 2' } },
    1200,
  );
  assert.equal(renderSteps(state, 2000, 0), ['✔ network      90 ms', '✖ ready probe  405 ms  INTERNAL: probe exited with code 2']);
});

test('frames without a step change nothing; unknown states count as running', () => {
  const state = applyStatus(initialState(), { state: 'done' }, 0);
  assert.equal(state.steps, []);
  const odd = applyStatus(initialState(), { step: 'pull', state: 'progress', elapsed_ms: 5 }, 0);
  assert.is(odd.steps[0]!.state, 'running');
});

test('colour only on a terminal without NO_COLOR; the tick is green, the cross red', () => {
  assert.is(paletteFor(false, {}), PLAIN);
  assert.is(paletteFor(true, { NO_COLOR: '1' }), PLAIN);
  assert.is(paletteFor(true, { TERM: 'dumb' }), PLAIN);
  assert.is(paletteFor(true, { TERM: 'xterm' }), COLORS);
  const state = applyStatus(initialState(), { step: 'network', state: 'done', elapsed_ms: 5 }, 0);
  assert.is(renderSteps(state, 0, 0, COLORS)[0], '\x1b[32m✔\x1b[0m network  \x1b[2m5 ms\x1b[0m');
});

test('redraw moves up over the previous block and clears each line', () => {
  assert.is(redraw(0, ['a', 'b']), '\r\x1b[2Ka\n\r\x1b[2Kb\n');
  assert.is(redraw(2, ['a', 'b', 'c']), '\x1b[2A\r\x1b[2Ka\n\r\x1b[2Kb\n\r\x1b[2Kc\n');
});

test('durations and ages read naturally', () => {
  assert.is(formatDuration(0), '0 ms');
  assert.is(formatDuration(999), '999 ms');
  assert.is(formatDuration(1234), '1.2 s');
  assert.is(formatDuration(125_000), '2 m 05 s');
  assert.is(formatAge(5_000), '5 s');
  assert.is(formatAge(3_700_000), '1 h');
  assert.is(formatAge(NaN), '-');
});

test('result: location first, then session, network and containers', () => {
  const lines = renderResult({
    id: 's-1',
    location: { host: '127.0.0.1', port: 32768 },
    network: { name: 'edgeecho-s-1', subnet: '10.213.0.0/28' },
    containers: [
      { id: 'a'.repeat(64), name: 'edgeecho-s-1-probe', role: 'probe' },
      { id: 'b'.repeat(64), name: 'edgeecho-s-1-stream', role: 'stream' },
    ],
  });
  assert.equal(lines, [
    'location  127.0.0.1:32768',
    'session   s-1',
    'network   edgeecho-s-1 (10.213.0.0/28)',
    `probe     edgeecho-s-1-probe  ${'a'.repeat(12)}`,
    `stream    edgeecho-s-1-stream  ${'b'.repeat(12)}`,
  ]);
  assert.is(renderResult({ location: { host: '::1', port: 9 } })[0], 'location  [::1]:9');
});

test('errors carry the wire code; failure reasons are found in the usual places', () => {
  assert.is(renderError({ code: 'RESOURCE_EXHAUSTED', message: '32 sessions live (EDGEECHO_MAX_SESSIONS=32)' }), 'error RESOURCE_EXHAUSTED: 32 sessions live (EDGEECHO_MAX_SESSIONS=32)');
  assert.is(failureReason({ error: 'boom' }), 'boom');
  assert.is(failureReason({ message: 'm' }), 'm');
  assert.is(failureReason({ other: 1 }), null);
  assert.is(failureReason(null), null);
});

test('session table and record rendering', () => {
  const now = 10_000_000;
  const table = renderSessionTable(
    [
      { id: 's-1', mode: 'plain', state: 'ready', count: 1000, created_at: now - 90_000, location: { host: '127.0.0.1', port: 32768 } },
      { id: 's-22', mode: 'segmented', state: 'failed', count: 5, created_at: now - 7_200_000, location: null },
    ],
    now,
  );
  assert.is(table, ['ID    MODE       STATE   COUNT  AGE  LOCATION', 's-1   plain      ready   1000   1 m  127.0.0.1:32768', 's-22  segmented  failed  5      2 h  -', ''].join('\n'));
  assert.is(renderSessionTable([], now), 'no sessions\n');
  assert.equal(sessionsOf({ sessions: [{ id: 'x' }] }), [{ id: 'x' }]);
  assert.equal(sessionsOf([{ id: 'y' }]), [{ id: 'y' }]);
  const text = renderSession(
    {
      id: 's-1', mode: 'plain', state: 'failed', count: 10, payload_bytes: 64, rate: null, created_at: now - 5000, ended_at: now,
      error: { code: 'TIMEOUT', message: 'late' },
      containers: [{ id: 'c'.repeat(64), name: 'edgeecho-s-1-probe', role: 'probe', exit_code: 1 }],
      transitions: [{ state: 'creating', at: now - 5000 }, { state: 'failed', at: now, reason: 'probe timed out' }],
    },
    now,
  );
  assert.match(text, /^id {8}s-1$/m);
  assert.match(text, /^rate {6}unlimited$/m);
  // session.get answers snake_case (payload_bytes, created_at, ended_at, exit_code): these lines read those keys
  assert.match(text, /^payload {3}64 bytes$/m);
  assert.match(text, /^created {3}\S+ \(5 s ago\)$/m);
  assert.match(text, /^ended {5}\S+$/m);
  assert.match(text, /^error {5}TIMEOUT: late$/m);
  assert.match(text, /probe {2}edgeecho-s-1-probe {2}c{12} {2}exit 1/);
  assert.match(text, /failed {2}probe timed out$/m);
});

test('status lines for watch', () => {
  assert.is(describeStatus({ id: 1, kind: 'status', step: 'probe', state: 'done', elapsed_ms: 1500 }), 'probe  done  1.5 s');
  assert.is(describeStatus({ id: 1, kind: 'status', state: 'ready', session: 's-1' }), 'ready  {"session":"s-1"}');
});

test('resources table', () => {
  assert.is(formatBytes(512), '512 B');
  assert.is(formatBytes(1536), '1.5 KiB');
  assert.is(formatBytes(undefined), '-');
  const text = renderResources({
    at: 0,
    host: { cpus: 2, cpu_percent: 12.5, memory_total_bytes: 4 * 1024 ** 3, memory_available_bytes: 3 * 1024 ** 3, load: [0.5, 0.25, 0.1], data_dir: '/var/lib/edgeecho', disk_free_bytes: 10 * 1024 ** 3, disk_total_bytes: 20 * 1024 ** 3 },
    instance: 'q4mzt7k2vb3x',
    engine: { name: 'docker', reachable: true, running: 2, containers: 3, networks: 1, foreign: { containers: 4, running: 3, networks: 2 }, unlabelled: { containers: 0, running: 0, networks: 0 } },
    sessions: [{ session: 's-1', containers: 2, cpu_percent: 3.25, memory_bytes: 50 * 1024 ** 2, memory_limit_bytes: 384 * 1024 ** 2 }],
    admission: { sessions: 1, max_sessions: 32, reserved_memory_bytes: 384 * 1024 ** 2, capacity_memory_bytes: 3 * 1024 ** 3, reserved_cpus: 1.5, capacity_cpus: 8 },
  });
  assert.ok(text.includes(['HOST    USED      TOTAL', 'cpu     12.5%     2 cores   load 0.5 0.25 0.1', 'memory  1.0 GiB   4.0 GiB   3.0 GiB available', 'disk    10.0 GiB  20.0 GiB  /var/lib/edgeecho'].join('\n')), text);
  assert.match(text, /engine {4}docker \(reachable\): 2 of 3 containers running, 1 networks/);
  assert.match(text, /instance  q4mzt7k2vb3x\n {10}foreign: 3 of 4 containers running, 2 networks of other instances \(left alone\)\n/);
  assert.not.match(text, /unlabelled/, 'no line for a count of zero');
  assert.match(text, /admission 1 of 32 sessions, memory 384\.0 MiB of 3\.0 GiB, cpus 1\.5 of 8 reserved/);
  assert.ok(text.includes('SESSION  CONTAINERS  CPU   MEMORY    LIMIT\ns-1      2           3.3%  50.0 MiB  384.0 MiB\n'), text);
  assert.match(renderResources({ host: {}, engine: { reachable: false, error: 'ECONNREFUSED' }, sessions: [] }), /unreachable: ECONNREFUSED[\s\S]*no live sessions/);
});

test.run();

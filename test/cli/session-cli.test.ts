/**
 * The session CLI driven as a user drives it: a pseudo-terminal (script(1)) for the live view, a pipe for
 * JSON lines, against a real daemon whose session ops are fakes (test/support/fake-session-daemon.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FAIL_COUNT, SESSION, startFakeDaemon, type FakeDaemon } from '../support/fake-session-daemon.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CLI_TIMEOUT_MS = 30_000;
const SCRIPT = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p)) ?? null;
if (!SCRIPT && process.env.EDGEECHO_REQUIRE_DOCKER === '1') throw new Error('CI mode: script(1) from util-linux is needed for the pseudo-terminal tests');
if (!SCRIPT) console.warn('\n!!! SKIPPED session CLI terminal tests: script(1) not found !!!\n');

const cliArgs = (args: string[]): string[] => [process.execPath, '--import', 'tsx', 'src/cli/main.ts', ...args];
const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const stripAnsi = (s: string): string => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** In a pipe: stdout is not a terminal. */
function runPiped(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const [cmd, ...rest] = cliArgs(args);
    execFile(cmd!, rest, { cwd: root, env: { ...process.env, ...env }, timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** In a pseudo-terminal: script -qfec runs the command with a pty as its stdio and returns its exit code. */
function runInTerminal(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const command = cliArgs(args).map(shellQuote).join(' ');
    const child = spawn(SCRIPT!, ['-qfec', command, '/dev/null'], { cwd: root, env: { ...process.env, TERM: 'xterm-256color', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`script(1) run did not end within ${CLI_TIMEOUT_MS} ms; output so far: ${stdout}`));
    }, CLI_TIMEOUT_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

let fake: FakeDaemon;
test.before(async () => {
  fake = await startFakeDaemon();
});
test.after(async () => {
  await fake.close();
});

const conn = (): string[] => ['--host', '127.0.0.1', '--port', String(fake.port)];

test('session create on a terminal: spinners turn into ticks with durations, then the location', async () => {
  if (!SCRIPT) return;
  const run = await runInTerminal(['session', 'create', '--count', '10', ...conn()]);
  assert.is(run.code, 0, run.stdout + run.stderr);
  const text = stripAnsi(run.stdout);
  // A spinner frame was drawn while a step ran, and the cursor was hidden then shown again.
  assert.match(text, /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] (admission|network|probe|stream)/);
  assert.ok(run.stdout.includes('\x1b[?25l') && run.stdout.includes('\x1b[?25h'));
  // The final block: every step ticked with a duration (lines are redrawn in place, so take the last ones).
  for (const step of ['admission', 'network', 'probe', 'stream']) assert.match(text, new RegExp(`✔ ${step} +\\d+ ms`), step);
  assert.match(text, /location  127\.0\.0\.1:32768/);
  assert.match(text, /session   s-0001/);
  assert.not.match(text, /"kind":"status"/, 'no JSON on a terminal');
});

test('session create failing on a terminal: a cross on the failed step, exit 1, the code on stderr', async () => {
  if (!SCRIPT) return;
  const run = await runInTerminal(['session', 'create', '--count', String(FAIL_COUNT), ...conn()]);
  assert.is(run.code, 1, run.stdout);
  const text = stripAnsi(run.stdout);
  assert.match(text, /✔ network +\d+ ms/);
  assert.match(text, /✖ probe +\d+ ms +TIMEOUT: probe not ready within 30000 ms/);
  // script(1) merges the pty's stderr into its output.
  assert.match(text, /error TIMEOUT: probe not ready within 30000 ms \(EDGEECHO_READY_TIMEOUT_MS\)/);
  assert.not.match(text, /location/);
});

test('session create in a pipe: one JSON line per frame, result last', async () => {
  const run = await runPiped(['session', 'create', '--segmented', '--count', '10', '--payload-bytes', '128', ...conn()]);
  assert.is(run.code, 0, run.stderr);
  const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const statuses = lines.filter((l) => l.kind === 'status');
  assert.equal(statuses.map((s) => `${s.step}:${s.state}`), ['admission:started', 'admission:done', 'network:started', 'network:done', 'probe:started', 'probe:done', 'stream:started', 'stream:done']);
  const last = lines[lines.length - 1]!;
  assert.is(last.kind, 'result');
  assert.equal((last.data as { location: unknown }).location, { host: '127.0.0.1', port: 32768 });
  assert.is(run.stdout.includes('\x1b['), false, 'no terminal control sequences in a pipe');
});

test('session create failing in a pipe: the error frame as JSON, exit 1, code and message on stderr', async () => {
  const run = await runPiped(['session', 'create', '--count', String(FAIL_COUNT), ...conn()]);
  assert.is(run.code, 1);
  const last = JSON.parse(run.stdout.trim().split('\n').pop()!) as { kind: string; error: { code: string } };
  assert.is(last.kind, 'error');
  assert.is(last.error.code, 'TIMEOUT');
  assert.match(run.stderr, /error TIMEOUT: probe not ready within 30000 ms/);
});

test('flags > env: EDGEECHO_PORT names a dead port, --port the live one', async () => {
  const run = await runPiped(['session', 'ls', '--json', '--port', String(fake.port)], { EDGEECHO_PORT: '1', EDGEECHO_HOST: '127.0.0.1' });
  assert.is(run.code, 0, run.stderr);
  const viaEnv = await runPiped(['session', 'ls', '--json'], { EDGEECHO_PORT: String(fake.port), EDGEECHO_HOST: '127.0.0.1' });
  assert.is(viaEnv.code, 0, viaEnv.stderr);
  const dead = await runPiped(['session', 'ls'], { EDGEECHO_PORT: '1', EDGEECHO_HOST: '127.0.0.1' });
  assert.is(dead.code, 1);
  assert.match(dead.stderr, /error CONNECTION_CLOSED: cannot connect to the edgeecho daemon at 127\.0\.0\.1:1/);
});

test('session ls, get, stop and resources on a terminal read as tables', async () => {
  if (!SCRIPT) return;
  const ls = await runInTerminal(['session', 'ls', ...conn()]);
  assert.is(ls.code, 0, ls.stdout);
  assert.match(stripAnsi(ls.stdout), /ID +MODE +STATE +COUNT +AGE +LOCATION\r?\ns-0001 +plain +ready +10 +\d+ s +127\.0\.0\.1:32768\r?\nnext: page-2/);
  const last = await runInTerminal(['session', 'ls', '--before', 'page-2', ...conn()]);
  assert.match(stripAnsi(last.stdout), /no sessions\r?\n$/, 'the last page prints no cursor');
  const get = await runInTerminal(['session', 'get', SESSION.id, ...conn()]);
  assert.is(get.code, 0, get.stdout);
  assert.match(stripAnsi(get.stdout), /location  127\.0\.0\.1:32768/);
  assert.match(stripAnsi(get.stdout), /probe +edgeecho-s-0001-probe +a{12}/);
  const missing = await runInTerminal(['session', 'get', 'nope', ...conn()]);
  assert.is(missing.code, 1);
  assert.match(stripAnsi(missing.stdout), /error NOT_FOUND: no session "nope"/);
  const stop = await runInTerminal(['session', 'stop', SESSION.id, ...conn()]);
  assert.is(stop.code, 0, stop.stdout);
  assert.match(stripAnsi(stop.stdout), /✔ stop containers +\d+ ms[\s\S]*stopped s-0001 \(stopped\)/);
  const res = await runInTerminal(['resources', ...conn()]);
  assert.is(res.code, 0, res.stdout);
  assert.match(stripAnsi(res.stdout), /cpu +10\.0% +2 cores/);
  assert.match(stripAnsi(res.stdout), /s-0001 +2 +1\.5%/);
});

test('--help on every command; usage errors exit 2', async () => {
  for (const cmd of [['session', 'create'], ['session', 'ls'], ['session', 'get'], ['session', 'stop'], ['session', 'watch'], ['resources']]) {
    const run = await runPiped([...cmd, '--help']);
    assert.is(run.code, 0, cmd.join(' ') + run.stderr);
    assert.match(run.stdout, new RegExp(`^usage: edgeecho ${cmd.join(' ')}`), cmd.join(' '));
    assert.match(run.stdout, /--token-file FILE/);
    assert.match(run.stdout, /--tls-ca FILE/);
  }
  const noCount = await runPiped(['session', 'create', ...conn()]);
  assert.is(noCount.code, 2);
  assert.match(noCount.stderr, /--count N is required/);
  const both = await runPiped(['session', 'create', '--plain', '--segmented', '--count', '1', ...conn()]);
  assert.is(both.code, 2);
  assert.match(both.stderr, /--plain and --segmented exclude each other/);
});

test.run();

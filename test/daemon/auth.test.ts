import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeechoError } from '../../protocol/errors.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from '../../src/client/index.js';
import { startFakeDaemon } from '../support/fake-session-daemon.js';
import { assertExposureAllowed, AUTH_WINDOW_MS, isLoopback, peerAddress, readTokenFile, TokenAuth } from '../../src/daemon/auth.js';

const TOKEN = 'correct-horse-battery-staple-0123';

/** A clock the test moves, and a sleep that records what it was asked to wait without waiting. */
function fakeTime() {
  let now = 1_000_000;
  const slept: number[] = [];
  return {
    now: () => now,
    advance: (ms: number) => void (now += ms),
    sleep: async (ms: number) => void slept.push(ms),
    slept,
  };
}

test('the right token passes, a wrong, missing or non-string one fails', async () => {
  const t = fakeTime();
  const auth = new TokenAuth({ token: TOKEN, maxFailures: 100, now: t.now, sleep: t.sleep });
  assert.is(await auth.authenticate(TOKEN, '10.0.0.5:4000'), true);
  assert.is(await auth.authenticate(TOKEN + 'x', '10.0.0.5:4000'), false);
  assert.is(await auth.authenticate(TOKEN.slice(0, -1), '10.0.0.5:4000'), false);
  assert.is(await auth.authenticate('', '10.0.0.5:4000'), false);
  assert.is(await auth.authenticate(undefined, '10.0.0.5:4000'), false);
  assert.is(await auth.authenticate(12345, '10.0.0.5:4000'), false);
  assert.is(await auth.authenticate(Buffer.from(TOKEN), '10.0.0.5:4000'), true);
});

test('each failure delays its answer, longer the more a peer fails; a success does not wait', async () => {
  const t = fakeTime();
  const auth = new TokenAuth({ token: TOKEN, maxFailures: 10, now: t.now, sleep: t.sleep, baseDelayMs: 100 });
  await auth.authenticate(TOKEN, '10.0.0.5:1');
  assert.equal(t.slept, []);
  for (let i = 0; i < 4; i++) await auth.authenticate('nope', '10.0.0.5:1');
  assert.equal(t.slept, [100, 200, 400, 800]);
});

test('past the limit a peer is refused without comparing, with a clear error, until the window passes', async () => {
  const t = fakeTime();
  const auth = new TokenAuth({ token: TOKEN, maxFailures: 3, now: t.now, sleep: t.sleep });
  for (let i = 0; i < 3; i++) assert.is(await auth.authenticate('guess' + i, '192.0.2.7:' + (5000 + i)), false);
  // Even the right token is refused now: the limit is checked before the comparison.
  try {
    await auth.authenticate(TOKEN, '192.0.2.7:6000');
    assert.unreachable('expected UNAUTHENTICATED');
  } catch (err) {
    assert.instance(err, EdgeechoError);
    assert.is((err as EdgeechoError).code, 'UNAUTHENTICATED');
    assert.match((err as EdgeechoError).message, /too many failed hellos from 192\.0\.2\.7: 3 in the last 60 s \(limit EDGEECHO_AUTH_MAX_FAILURES=3\); retry in 60 s/);
  }
  // Other peers are not affected.
  assert.is(await auth.authenticate(TOKEN, '192.0.2.8:6000'), true);
  t.advance(AUTH_WINDOW_MS);
  assert.is(auth.failureCount('192.0.2.7:1'), 0);
  assert.is(await auth.authenticate(TOKEN, '192.0.2.7:6001'), true);
});

test('parallel attempts from one peer count against each other before any delay ends', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const auth = new TokenAuth({ token: TOKEN, maxFailures: 2, sleep: () => gate });
  const attempts = Array.from({ length: 5 }, (_, i) => auth.authenticate('guess' + i, '198.51.100.1:' + (7000 + i)).then((ok) => ok, (err: EdgeechoError) => err.code));
  release();
  const results = await Promise.all(attempts);
  assert.equal(results, [false, false, 'UNAUTHENTICATED', 'UNAUTHENTICATED', 'UNAUTHENTICATED']);
});

test('peer addresses: port stripped, IPv6 brackets removed, unix peers share one bucket', () => {
  assert.is(peerAddress('10.0.0.5:51234'), '10.0.0.5');
  assert.is(peerAddress('[::1]:4000'), '::1');
  assert.is(peerAddress('::ffff:127.0.0.1'), '::ffff:127.0.0.1');
  assert.is(peerAddress('2001:db8::1'), '2001:db8::1');
  assert.is(peerAddress('unix:/run/edgeecho/edgeecho.sock'), 'unix');
  assert.is(peerAddress(''), 'unix');
});

test('a non-loopback listen address without a token is refused, naming EDGEECHO_HOST and EDGEECHO_TOKEN_FILE', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) {
    assert.ok(isLoopback(host), host);
    assertExposureAllowed(host, false);
  }
  for (const host of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.10', 'example.com']) {
    assert.not.ok(isLoopback(host), host);
    assert.throws(() => assertExposureAllowed(host, false), (err: EdgeechoError) => err.code === 'BAD_REQUEST' && /EDGEECHO_HOST/.test(err.message) && /EDGEECHO_TOKEN_FILE/.test(err.message));
    assertExposureAllowed(host, true);
  }
});

test('token file: read and trimmed; refused when missing, empty, multi-line or readable by others', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-auth-'));
  try {
    const file = join(dir, 'token');
    writeFileSync(file, `  ${TOKEN}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    assert.is(readTokenFile(file), TOKEN);
    chmodSync(file, 0o640);
    assert.is(readTokenFile(file), TOKEN, 'group-readable (root:edgeecho 0640) is the documented setup');

    const refused = (path: string, pattern: RegExp): void =>
      assert.throws(() => readTokenFile(path), (err: EdgeechoError) => err.code === 'BAD_REQUEST' && pattern.test(err.message) && err.message.includes('EDGEECHO_TOKEN_FILE'));
    chmodSync(file, 0o644);
    refused(file, /mode 0644; expected no access for others/);
    refused(join(dir, 'absent'), /cannot be read: ENOENT/);
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n \n', { mode: 0o600 });
    chmodSync(empty, 0o600);
    refused(empty, /is empty/);
    const multi = join(dir, 'multi');
    writeFileSync(multi, 'one\ntwo\n', { mode: 0o600 });
    chmodSync(multi, 0o600);
    refused(multi, /several lines/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- through a real daemon and the client library ----

async function authDaemon(maxFailures: number) {
  const t = fakeTime();
  const auth = new TokenAuth({ token: TOKEN, maxFailures, sleep: t.sleep });
  const fake = await startFakeDaemon({ authenticate: (token, peer) => auth.authenticate(token, peer) });
  return { fake, auth, slept: t.slept };
}

const refusal = (p: Promise<unknown>): Promise<EdgeechoError> =>
  p.then(
    () => assert.unreachable('expected a refusal') as never,
    (err: EdgeechoError) => err,
  );

test('daemon with a token: the greeting asks for it; right token passes, wrong and missing are refused', async () => {
  const { fake } = await authDaemon(10);
  try {
    const ok = await connect({ port: fake.port, token: TOKEN, keepaliveMs: 0 });
    assert.equal(ok.greeting!.auth, ['token']);
    assert.equal(await ok.request('session.get', { id: 's-0001' }).then((r) => (r as { id: string }).id), 's-0001');
    await ok.close();

    const wrong = await refusal(connect({ port: fake.port, token: 'not-it', keepaliveMs: 0 }));
    assert.is(wrong.code, 'UNAUTHENTICATED');
    assert.match(wrong.message, /the token in hello was refused/);
    const missing = await refusal(connect({ port: fake.port, keepaliveMs: 0 }));
    assert.is(missing.code, 'UNAUTHENTICATED');
    assert.match(missing.message, /requires a token/);
  } finally {
    await fake.close();
  }
});

test('ops before hello succeeds are refused', async () => {
  const { fake } = await authDaemon(10);
  try {
    const client = await connect({ port: fake.port, hello: false, keepaliveMs: 0 });
    try {
      const err = await refusal(client.request('session.list', {}));
      assert.is(err.code, 'UNAUTHENTICATED');
      // ping is allowed before hello by design.
      assert.ok(await client.request('ping'));
      const afterWrong = await refusal(client.request('hello', { client: 'test', protocol: 1, token: 'nope' }));
      assert.is(afterWrong.code, 'UNAUTHENTICATED');
      assert.is((await refusal(client.request('session.list', {}))).code, 'UNAUTHENTICATED');
    } finally {
      await client.close();
    }
  } finally {
    await fake.close();
  }
});

test('brute force: failures are delayed, then the peer is refused unchecked and the connection closed', async () => {
  const { fake, slept } = await authDaemon(3);
  try {
    for (let i = 0; i < 3; i++) assert.is((await refusal(connect({ port: fake.port, token: 'guess' + i, keepaliveMs: 0 }))).code, 'UNAUTHENTICATED');
    assert.equal(slept, [250, 500, 1000]);
    const client = await connect({ port: fake.port, hello: false, keepaliveMs: 0 });
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const err = await refusal(client.request('hello', { client: 'test', protocol: 1, token: TOKEN }));
    assert.is(err.code, 'UNAUTHENTICATED');
    assert.match(err.message, /too many failed hellos from 127\.0\.0\.1: 3 in the last 60 s \(limit EDGEECHO_AUTH_MAX_FAILURES=3\)/);
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the daemon kept the connection open')), 5_000).unref())]);
    assert.ok(client.closed);
    assert.equal(slept, [250, 500, 1000], 'a refused attempt is not compared, so not delayed either');
  } finally {
    await fake.close();
  }
});

test('the daemon refuses to start on a non-loopback address without a token file', async () => {
  const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'daemon', '--host', '0.0.0.0', '--port', '0'], {
      cwd: fileURLToPath(new URL('../../', import.meta.url)),
      env: { ...process.env, EDGEECHO_TOKEN_FILE: '', EDGEECHO_BUILD_IMAGES: 'false', EDGEECHO_LOG_LEVEL: 'fatal' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
  assert.is(run.code, 2, run.stderr);
  assert.match(run.stderr, /refusing to listen on 0\.0\.0\.0 \(EDGEECHO_HOST\) without authentication: a non-loopback address requires EDGEECHO_TOKEN_FILE/);
});

test.run();

import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestDaemon, type TestDaemon } from '../support/client-daemon.js';
import { finish, jsonLines, runCli, spawnCli } from '../support/run-cli.js';

let daemon: TestDaemon;

test.before(async () => {
  daemon = await startTestDaemon();
});
test.after(async () => {
  await daemon?.stop();
});

test('pipe: greeting, automatic hello, ids filled in, every answer, bad lines skipped, exit 0 at EOF', async () => {
  const input = [
    '{"op":"ping"}',
    'not json',
    '[1,2]',
    '',
    '{"op":"test.steps","args":{"n":2}}',
    '{"id":"x","op":"test.fail","args":{"code":"NOT_FOUND","message":"no such session"}}',
    '{"id":10,"op":"test.echo","args":{"text":"hi"}}',
    '{"op":"test.echo","args":{"i":11}}',
  ].join('\n');
  const r = await runCli(['cat', '--port', String(daemon.port)], input + '\n');
  assert.is(r.code, 0, r.stderr);
  const frames = jsonLines(r.stdout);
  assert.is(frames[0].kind, 'hello');
  assert.is(frames[0].server, 'edgeecho');
  assert.equal(frames[1], { id: 1, kind: 'result', data: frames[1].data });
  assert.is(frames[1].data.server, 'edgeecho', 'hello answered');
  const byId = (id: unknown) => frames.filter((f) => f.id === id);
  assert.is(byId(2)[0].data.pong, true);
  assert.equal(byId(3).map((f) => f.kind), ['status', 'status', 'result']);
  assert.equal(byId('x')[0].error.code, 'NOT_FOUND');
  assert.equal(byId(10)[0].data, { text: 'hi' });
  assert.equal(byId(11)[0].data, { i: 11 }, 'the filled-in id moves past explicit ones');
  assert.match(r.stderr, /line 2: expected a JSON request map/);
  assert.match(r.stderr, /line 3: expected a JSON request map .* got an array/);
});

test('--no-hello: the gate answers UNAUTHENTICATED, ping still works', async () => {
  const r = await runCli(['cat', '--no-hello', '--port', String(daemon.port)], '{"op":"test.echo"}\n{"op":"ping"}\n');
  assert.is(r.code, 0, r.stderr);
  const frames = jsonLines(r.stdout);
  assert.is(frames[0].kind, 'hello');
  assert.equal(frames.find((f) => f.id === 1)?.error?.code, 'UNAUTHENTICATED');
  assert.is(frames.find((f) => f.id === 2)?.data?.pong, true);
});

test('--hex shows each frame\'s bytes: header length matches the body', async () => {
  const r = await runCli(['cat', '--hex', '--port', String(daemon.port)], '{"op":"ping"}\n');
  assert.is(r.code, 0, r.stderr);
  const lines = jsonLines(r.stdout);
  assert.ok(lines.length >= 3);
  for (const line of lines) {
    const bytes = Buffer.from(line.hex, 'hex');
    assert.is(bytes.readUInt32BE(0), bytes.length - 4);
    assert.type(line.frame, 'object');
  }
  assert.is(lines[0].frame.kind, 'hello');
});

test('unix socket from EDGEECHO_SOCKET, token from --token-file', async () => {
  const own = await startTestDaemon({ token: 'open sesame' });
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-cat-'));
  try {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'open sesame\n');
    const ok = await runCli(['cat', '--token-file', tokenFile], '{"op":"test.echo","args":{"i":1}}\n', { EDGEECHO_SOCKET: own.socket });
    assert.is(ok.code, 0, ok.stderr);
    const frames = jsonLines(ok.stdout);
    assert.equal(frames[0].auth, ['token']);
    assert.equal(frames.find((f) => f.id === 2)?.data, { i: 1 });

    writeFileSync(tokenFile, 'wrong');
    const refused = await runCli(['cat', '--token-file', tokenFile, '--socket', own.socket], '{"op":"test.echo"}\n');
    assert.is(jsonLines(refused.stdout).find((f) => f.id === 1)?.error?.code, 'UNAUTHENTICATED');
    assert.match(refused.stderr, /hello was refused/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await own.stop();
  }
});

test('answers still owed when --wait-ms runs out -> exit 1 naming the ids', async () => {
  const r = await runCli(['cat', '--wait-ms', '300', '--port', String(daemon.port)], '{"id":"w","op":"test.wait","args":{"tag":"cat-wait"}}\n');
  assert.is(r.code, 1);
  assert.match(r.stderr, /1 requests got no answer within 300 ms \(--wait-ms\): ids "w"/);
  assert.equal(jsonLines(r.stdout).filter((f) => f.id === 'w').map((f) => f.kind), ['status']);
});

test('interactive: answers arrive while stdin stays open', async () => {
  const child = spawnCli(['cat', '--port', String(daemon.port)]);
  const done = finish(child);
  let seen = '';
  const waitFor = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${re} in ${seen}`)), 10_000);
      const check = () => {
        if (re.test(seen)) {
          clearTimeout(timer);
          child.stdout.off('data', onData);
          resolve();
        }
      };
      const onData = (c: Buffer) => {
        seen += c.toString();
        check();
      };
      child.stdout.on('data', onData);
      check();
    });
  try {
    child.stdin.write('{"id":"a","op":"ping"}\n');
    await waitFor(/"id":"a","kind":"result"/);
    child.stdin.write('{"id":"b","op":"test.echo","args":{"text":"second"}}\n');
    await waitFor(/"id":"b","kind":"result"/);
  } finally {
    child.stdin.end();
  }
  const r = await done;
  assert.is(r.code, 0, r.stderr);
});

test('nothing listening -> exit 1 with the address', async () => {
  const r = await runCli(['cat', '--port', '1'], '{"op":"ping"}\n');
  assert.is(r.code, 1);
  assert.match(r.stderr, /127\.0\.0\.1:1: ECONNREFUSED/);
});

test('a bad flag -> usage on stderr, exit 2', async () => {
  const r = await runCli(['cat', '--port', 'seventy'], '');
  assert.is(r.code, 2);
  assert.match(r.stderr, /--port: expected an integer in 1\.\.65535, got "seventy"/);
  assert.match(r.stderr, /usage: edgeecho cat/);
});

test.run();

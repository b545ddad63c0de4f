import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { EdgeechoError } from '../../protocol/errors.js';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServerWithTls, loadServerTls, secureAcceptedSocket, tlsListener } from '../../src/daemon/tls.js';
import { connect } from '../../src/client/index.js';
import { startFakeDaemon } from '../support/fake-session-daemon.js';
import { createTlsSocketFactory } from '../../src/client/tls.js';
import { makeTestCerts } from '../support/tls-certs.js';

const certs = await makeTestCerts();

const listen = (server: Server): Promise<number> => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/** Writes "ping", expects the server to echo it. */
async function roundTrip(socket: Duplex): Promise<string> {
  const reply = new Promise<string>((resolve, reject) => {
    socket.once('data', (d: Buffer) => resolve(d.toString()));
    socket.once('error', reject);
  });
  socket.write('ping');
  const text = await reply;
  socket.destroy();
  return text;
}

test('loadServerTls: nothing configured is null; a good pair loads', () => {
  assert.is(loadServerTls({ tlsCert: '', tlsKey: '' }), null);
  const tls = loadServerTls({ tlsCert: certs.cert, tlsKey: certs.key });
  assert.ok(tls);
  assert.is(tls!.certFile, certs.cert);
});

test('loadServerTls: half a pair, unreadable files, non-PEM and a mismatched key are clear errors', () => {
  const refused = (settings: { tlsCert: string; tlsKey: string }, pattern: RegExp): void =>
    assert.throws(() => loadServerTls(settings), (err: EdgeechoError) => err.code === 'BAD_REQUEST' && pattern.test(err.message));
  refused({ tlsCert: certs.cert, tlsKey: '' }, /needs both EDGEECHO_TLS_CERT and EDGEECHO_TLS_KEY; EDGEECHO_TLS_KEY is not set/);
  refused({ tlsCert: '', tlsKey: certs.key }, /EDGEECHO_TLS_CERT is not set/);
  refused({ tlsCert: join(certs.dir, 'absent.pem'), tlsKey: certs.key }, /absent\.pem \(EDGEECHO_TLS_CERT\) cannot be read: ENOENT/);
  const junk = join(certs.dir, 'junk.pem');
  writeFileSync(junk, 'not a certificate\n');
  refused({ tlsCert: junk, tlsKey: certs.key }, /junk\.pem \(EDGEECHO_TLS_CERT\): expected a PEM file with a CERTIFICATE block/);
  refused({ tlsCert: certs.cert, tlsKey: certs.otherKey }, /do not form a pair/);
});

test('TLS round trip: the client factory trusts the daemon through --tls-ca and refuses another CA', async () => {
  const tls = loadServerTls({ tlsCert: certs.cert, tlsKey: certs.key })!;
  const server = createServerWithTls(tls, (socket) => socket.on('data', (d) => socket.write(d)));
  const port = await listen(server);
  try {
    const trusted = createTlsSocketFactory({ ca: readFileSync(certs.cert) });
    assert.is(await roundTrip(await trusted({ target: { host: '127.0.0.1', port }, signal: new AbortController().signal })), 'ping');
    const byName = createTlsSocketFactory({ ca: readFileSync(certs.cert) });
    assert.is(await roundTrip(await byName({ target: { host: 'localhost', port }, signal: new AbortController().signal })), 'ping');

    const wrongCa = createTlsSocketFactory({ ca: readFileSync(certs.otherCert) });
    try {
      await wrongCa({ target: { host: '127.0.0.1', port }, signal: new AbortController().signal });
      assert.unreachable('expected the handshake to be refused');
    } catch (err) {
      assert.is((err as EdgeechoError).code, 'CONNECTION_CLOSED');
      assert.match((err as EdgeechoError).message, /cannot open TLS to the edgeecho daemon at 127\.0\.0\.1:\d+: .*(self.signed|certificate)/i);
    }
    const systemStore = createTlsSocketFactory();
    await systemStore({ target: { host: '127.0.0.1', port }, signal: new AbortController().signal }).then(
      () => assert.unreachable('a self-signed cert is not in the system store'),
      (err: EdgeechoError) => assert.is(err.code, 'CONNECTION_CLOSED'),
    );
  } finally {
    await close(server);
  }
});

test('a plain-TCP client on the TLS port gets nothing usable and the server stays up', async () => {
  const tls = loadServerTls({ tlsCert: certs.cert, tlsKey: certs.key })!;
  const server = createServerWithTls(tls, (socket) => socket.on('data', (d) => socket.write(d)));
  server.on('tlsClientError', () => {});
  const port = await listen(server);
  try {
    const { connect } = await import('node:net');
    const raw = connect({ host: '127.0.0.1', port });
    const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
    raw.on('error', () => {});
    raw.write('{"op":"ping"}\n');
    await closed;
    const trusted = createTlsSocketFactory({ ca: readFileSync(certs.cert) });
    assert.is(await roundTrip(await trusted({ target: { host: '127.0.0.1', port }, signal: new AbortController().signal })), 'ping');
  } finally {
    await close(server);
  }
});

test('secureAcceptedSocket upgrades a connection a plain net.Server accepted (systemd-passed sockets)', async () => {
  const tls = loadServerTls({ tlsCert: certs.cert, tlsKey: certs.key })!;
  const server = createServer((raw) => {
    secureAcceptedSocket(raw, tls, 2_000).then((socket) => socket.on('data', (d) => socket.write(d)), () => {});
  });
  const port = await listen(server);
  try {
    const trusted = createTlsSocketFactory({ ca: readFileSync(certs.cert) });
    assert.is(await roundTrip(await trusted({ target: { host: '127.0.0.1', port }, signal: new AbortController().signal })), 'ping');
  } finally {
    await close(server);
  }
});

test('the client factory refuses a unix socket target', async () => {
  const factory = createTlsSocketFactory();
  await factory({ target: { path: '/run/edgeecho/edgeecho.sock' }, signal: new AbortController().signal }).then(
    () => assert.unreachable(),
    (err: EdgeechoError) => assert.match(err.message, /TLS is for TCP connections/),
  );
});

// ---- through a real daemon: the client library and `edgeecho cat` ----

async function tlsDaemon() {
  const tls = loadServerTls({ tlsCert: certs.cert, tlsKey: certs.key })!;
  return startFakeDaemon({ listeners: [tlsListener({ host: '127.0.0.1', port: 0, tls })] });
}

test('TLS round trip with the client library: connect({tls: {ca}}) gets the greeting, hello and an op', async () => {
  const fake = await tlsDaemon();
  try {
    const client = await connect({ port: fake.port, tls: { ca: readFileSync(certs.cert) }, keepaliveMs: 0 });
    try {
      assert.is(client.greeting!.server, 'edgeecho');
      const session = (await client.request('session.get', { id: 's-0001' })) as { id: string };
      assert.is(session.id, 's-0001');
    } finally {
      await client.close();
    }
    const plain = await connect({ port: fake.port, keepaliveMs: 0, connectTimeoutMs: 2_000 }).then(
      (c) => (c.destroy(), 'connected'),
      (err: EdgeechoError) => err.code,
    );
    assert.ok(plain === 'CONNECTION_CLOSED' || plain === 'TIMEOUT', `plain TCP to a TLS port must fail, got ${plain}`);
  } finally {
    await fake.close();
  }
});

function runCat(args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'cat', ...args], { cwd: fileURLToPath(new URL('../../', import.meta.url)), timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(input);
  });
}

test('TLS round trip with edgeecho cat --tls-ca; without it the daemon certificate is refused', async () => {
  const fake = await tlsDaemon();
  try {
    const run = await runCat(['--port', String(fake.port), '--tls-ca', certs.cert], '{"id":7,"op":"session.get","args":{"id":"s-0001"}}\n');
    assert.is(run.code, 0, run.stderr);
    const frames = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; id?: unknown; data?: { id?: string } });
    assert.is(frames[0]!.kind, 'hello');
    const answer = frames.find((f) => f.id === 7)!;
    assert.is(answer.kind, 'result');
    assert.is(answer.data!.id, 's-0001');

    const untrusted = await runCat(['--port', String(fake.port), '--tls'], '{"op":"ping"}\n');
    assert.is(untrusted.code, 1);
    assert.match(untrusted.stderr, /cannot open TLS to the edgeecho daemon at 127\.0\.0\.1:\d+/);
  } finally {
    await fake.close();
  }
});

test.after(() => certs.cleanup());
test.run();

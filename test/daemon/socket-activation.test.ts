import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { takeSystemdSockets } from '../../src/daemon/systemd-sockets.js';
import { dockerOrSkip } from '../support/docker.js';
import { connect as connectClient } from '../../src/client/index.js';
import { createTlsSocketFactory } from '../../src/client/tls.js';
import { makeTestCerts } from '../support/tls-certs.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHILD_TIMEOUT_MS = 15_000;

test('takeSystemdSockets: fds from 3 with names, and LISTEN_* removed from the environment', () => {
  const env: NodeJS.ProcessEnv = { LISTEN_FDS: '2', LISTEN_PID: '4242', LISTEN_FDNAMES: 'tcp:unix', OTHER: 'kept' };
  assert.equal(takeSystemdSockets(env, 4242), [
    { fd: 3, name: 'tcp' },
    { fd: 4, name: 'unix' },
  ]);
  assert.equal(env, { OTHER: 'kept' });
});

test('takeSystemdSockets: sockets addressed to another pid, absent or unnamed', () => {
  const other: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '1' };
  assert.equal(takeSystemdSockets(other, 4242), []);
  assert.equal(other, {}, 'cleared even when not ours, so no child mistakes them for its own');
  assert.equal(takeSystemdSockets({}, 4242), []);
  assert.equal(takeSystemdSockets({ LISTEN_FDS: '2', LISTEN_PID: '7', LISTEN_FDNAMES: 'only-one' }, 7), [
    { fd: 3, name: 'unknown' },
    { fd: 4, name: 'unknown' },
  ]);
  assert.throws(() => takeSystemdSockets({ LISTEN_FDS: 'many', LISTEN_PID: '7' }, 7), /LISTEN_FDS: expected an integer/);
});

const listening = (server: Server, ...args: unknown[]): Promise<void> =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    (server.listen as (...a: unknown[]) => void)(...args, () => resolve());
  });
const closeServer = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));
const fdOf = (server: Server): number => (server as unknown as { _handle: { fd: number } })._handle.fd;

/** Reads one line from a connection to `target`. */
function readLine(target: { port: number; host: string } | { path: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(target as never);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('end', () => resolve(text.trim()));
    socket.on('error', reject);
    socket.setTimeout(CHILD_TIMEOUT_MS, () => socket.destroy(new Error('no answer from the socket-activated child')));
  });
}

/**
 * Hands listening sockets to a child the way systemd does: at fds 3.., LISTEN_FDS, LISTEN_FDNAMES, and
 * LISTEN_PID equal to the child's own pid, which only the child knows: a shell sets it to $$ and execs.
 */
function spawnActivated(script: string[], fds: number[], names: string[]): ChildProcess {
  return spawn('sh', ['-c', 'export LISTEN_PID=$$; exec "$@"', 'sh', process.execPath, '--import', 'tsx', ...script], {
    cwd: root,
    env: { ...process.env, LISTEN_FDS: String(fds.length), LISTEN_FDNAMES: names.join(':') },
    stdio: ['ignore', 'pipe', 'pipe', ...fds],
  });
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`child printed nothing within ${CHILD_TIMEOUT_MS} ms; stderr: ${err}`)), CHILD_TIMEOUT_MS);
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(out.slice(0, out.indexOf('\n')));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited with ${code} before its first line; stderr: ${err}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

test('a child adopts a TCP and a unix listening socket passed as fds 3 and 4, and clears LISTEN_*', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-activation-'));
  const tcp = createServer();
  const unix = createServer();
  let child: ChildProcess | null = null;
  try {
    await listening(tcp, 0, '127.0.0.1');
    const port = (tcp.address() as AddressInfo).port;
    const bound = join(dir, 'bound.sock');
    const path = join(dir, 'edgeecho.sock');
    await listening(unix, bound);
    child = spawnActivated(['test/daemon/fixtures/systemd-socket-child.ts'], [fdOf(tcp), fdOf(unix)], ['tcp', 'unix']);
    const ready = firstLine(child);
    // The child holds its own copies now. Closing ours must not unlink the path the child serves, and
    // Node unlinks the path it bound on close: move the socket file out of its way first.
    renameSync(bound, path);
    await closeServer(tcp);
    await closeServer(unix);

    const report = JSON.parse(await ready) as { ready: unknown[] };
    assert.equal(report.ready, [
      { fd: 3, name: 'tcp', address: { host: '127.0.0.1', port } },
      { fd: 4, name: 'unix', address: { path: bound } },
    ]);
    assert.equal(JSON.parse(await readLine({ host: '127.0.0.1', port })), { fd: 3, name: 'tcp', transport: 'systemd-tcp', listen_fds: null, listen_pid: null });
    assert.equal(JSON.parse(await readLine({ path })), { fd: 4, name: 'unix', transport: 'systemd-unix', listen_fds: null, listen_pid: null });
  } finally {
    if (child) await stopChild(child);
    if (tcp.listening) await closeServer(tcp);
    if (unix.listening) await closeServer(unix);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a non-loopback TCP socket from systemd is refused without auth, naming the socket unit', async () => {
  const tcp = createServer();
  let child: ChildProcess | null = null;
  try {
    await listening(tcp, 0, '0.0.0.0');
    child = spawnActivated(['test/daemon/fixtures/systemd-socket-child.ts'], [fdOf(tcp)], ['public']);
    await closeServer(tcp);
    const outcome = await firstLine(child).then(
      (line) => `printed ${line}`,
      (err: Error) => err.message,
    );
    assert.match(outcome, /exited with 1/);
    assert.match(outcome, /refusing to listen on 0\.0\.0\.0 \(systemd socket fd 3 \(public\), ListenStream= in the \.socket unit\) without authentication: a non-loopback address requires EDGEECHO_TOKEN_FILE/);
  } finally {
    if (child) await stopChild(child);
    if (tcp.listening) await closeServer(tcp);
  }
});

test('TLS on a systemd TCP socket: connections are upgraded before the daemon sees them', async () => {
  const certs = await makeTestCerts();
  const tcp = createServer();
  let child: ChildProcess | null = null;
  try {
    await listening(tcp, 0, '127.0.0.1');
    const port = (tcp.address() as AddressInfo).port;
    child = spawn('sh', ['-c', 'export LISTEN_PID=$$; exec "$@"', 'sh', process.execPath, '--import', 'tsx', 'test/daemon/fixtures/systemd-socket-child.ts'], {
      cwd: root,
      env: { ...process.env, LISTEN_FDS: '1', LISTEN_FDNAMES: 'tls', TLS_CERT: certs.cert, TLS_KEY: certs.key },
      stdio: ['ignore', 'pipe', 'pipe', fdOf(tcp)],
    });
    const ready = firstLine(child);
    await closeServer(tcp);
    await ready;
    const socket = await createTlsSocketFactory({ ca: readFileSync(certs.cert) })({ target: { host: '127.0.0.1', port }, signal: AbortSignal.timeout(CHILD_TIMEOUT_MS) });
    const line = await new Promise<string>((resolve, reject) => {
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('end', () => resolve(text.trim()));
      socket.on('error', reject);
    });
    socket.destroy();
    assert.equal(JSON.parse(line), { fd: 3, name: 'tls', transport: 'systemd-tls', listen_fds: null, listen_pid: null });
  } finally {
    if (child) await stopChild(child);
    if (tcp.listening) await closeServer(tcp);
    certs.cleanup();
  }
});

test('the real daemon, socket-activated: greets on the passed fd and reports READY=1 through systemd-notify', async () => {
  // The daemon's ops need an engine to start (createOps pings it).
  if (!(await dockerOrSkip('socket-activated daemon'))) return;
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-activated-daemon-'));
  const tcp = createServer();
  let child: ChildProcess | null = null;
  try {
    // A stand-in systemd-notify first on PATH records what the daemon sends and with which NOTIFY_SOCKET.
    const calls = join(dir, 'notify-calls');
    writeFileSync(join(dir, 'systemd-notify'), `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> '${calls}'\n`);
    chmodSync(join(dir, 'systemd-notify'), 0o755);
    await listening(tcp, 0, '127.0.0.1');
    const port = (tcp.address() as AddressInfo).port;
    child = spawn('sh', ['-c', 'export LISTEN_PID=$$; exec "$@"', 'sh', process.execPath, '--import', 'tsx', 'src/cli/main.ts', 'daemon'], {
      cwd: root,
      env: {
        ...process.env,
        PATH: `${dir}:${process.env.PATH}`,
        NOTIFY_SOCKET: join(dir, 'notify.sock'),
        LISTEN_FDS: '1',
        LISTEN_FDNAMES: 'edgeecho',
        // Ignored under socket activation: the daemon must not bind these.
        EDGEECHO_PORT: '1',
        EDGEECHO_DATA_DIR: join(dir, 'state'),
        EDGEECHO_BUILD_IMAGES: 'false',
        EDGEECHO_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe', fdOf(tcp)],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdout!.resume();
    await closeServer(tcp);
    const deadline = Date.now() + CHILD_TIMEOUT_MS;
    while (!existsSync(calls) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(calls), `no READY=1 within ${CHILD_TIMEOUT_MS} ms; daemon stderr: ${stderr}`);
    assert.match(readFileSync(calls, 'utf8'), new RegExp(`^${join(dir, 'notify.sock')} --ready --status=listening on 127\\.0\\.0\\.1:${port}$`, 'm'));
    const client = await connectClient({ port, keepaliveMs: 0 });
    try {
      assert.is(client.greeting!.server, 'edgeecho');
      assert.ok(await client.request('ping'));
    } finally {
      await client.close();
    }
    await stopChild(child);
    assert.match(readFileSync(calls, 'utf8'), /STOPPING=1/);
  } finally {
    if (child) await stopChild(child);
    if (tcp.listening) await closeServer(tcp);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

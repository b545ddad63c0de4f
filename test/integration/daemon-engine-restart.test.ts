/**
 * The engine going away under a running daemon process: it reconnects and records how its sessions ended, with
 * their objects removed. Two ways:
 *  - always: the daemon talks to the engine through a unix-socket relay this test owns; the relay is cut (every
 *    connection, the event stream too) and the session's containers are killed meanwhile, as a dockerd restart
 *    without live-restore would; then the relay comes back.
 *  - only with EDGEECHO_REQUIRE_DOCKER=1 or EDGEECHO_TEST_DOCKERD_RESTART=1: the real dockerd is stopped and
 *    started again (it disrupts every other user of the engine). dockerd is always running again at the end.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { connect, type Client } from '../../src/client/index.js';
import { LABEL_ROLE, LABEL_SESSION } from '../../src/runtime/driver.js';
import { dockerOrSkip } from '../support/docker.js';
import { runLabel, cleanupDaemons, startDaemonProcess, waitFor, noneLeft as sharedNoneLeft, type DaemonProcess, type SessionView } from '../../support/daemon-process.js';

const LABEL = runLabel('daemon-engine-restart');
const ENGINE_SOCKET = process.env.EDGEECHO_DOCKER_SOCKET ?? '/var/run/docker.sock';
const DOCKERD_PID_FILE = '/var/run/docker.pid';
const DOCKERD_LOG = '/tmp/dockerd.log';
const RUN_DOCKERD_RESTART = process.env.EDGEECHO_REQUIRE_DOCKER === '1' || process.env.EDGEECHO_TEST_DOCKERD_RESTART === '1';
const docker = await dockerOrSkip('integration/daemon-engine-restart');


/** A unix socket relaying every connection to the engine's; `cut` drops them all and stops accepting. */
class EngineRelay {
  private server: Server | null = null;
  private readonly open = new Set<Socket>();

  constructor(readonly path: string) {}

  async up(): Promise<void> {
    const server = createServer((client) => {
      const engine = createConnection(ENGINE_SOCKET);
      this.open.add(client).add(engine);
      const drop = (): void => {
        client.destroy();
        engine.destroy();
        this.open.delete(client);
        this.open.delete(engine);
      };
      client.on('error', drop).on('close', drop);
      engine.on('error', drop).on('close', drop);
      client.pipe(engine).pipe(client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.path, () => resolve()));
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.open) s.destroy();
    this.open.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function sessionContainers(docker: Docker, id: string): Promise<Array<{ id: string; role: string }>> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_SESSION}=${id}`] } });
  return list.map((c) => ({ id: c.Id, role: c.Labels[LABEL_ROLE] ?? '' }));
}

const noneLeft = (ids: string[]) => sharedNoneLeft(docker!, LABEL, ids);

if (docker) {
  test('engine connection cut while a session runs and its containers die meanwhile: reconnects, records failed, removes everything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeecho-relay-'));
    const relay = new EngineRelay(join(dir, 'docker.sock'));
    let daemon: DaemonProcess | undefined;
    let client: Client | undefined;
    try {
      await relay.up();
      daemon = await startDaemonProcess({ label: LABEL, env: { EDGEECHO_DOCKER_SOCKET: relay.path } });
      client = await connect({ port: daemon.port });
      const { id } = await client.request<{ id: string }>('session.create', { mode: 'segmented', count: 40_000, rate: 2000 }, { timeoutMs: 60_000 });
      const watch = client.request<SessionView>('session.watch', { id }, { timeoutMs: 90_000 });

      await relay.cut();
      await daemon.waitForLog((l) => l.msg === 'runtime event stream broke; reconnecting', 10_000);
      // What a dockerd restart without live-restore does to running containers.
      for (const c of await sessionContainers(docker, id)) await docker.getContainer(c.id).kill().catch(() => undefined);
      assert.is((await client.request<SessionView>('session.get', { id })).state, 'ready', 'no engine, no news: the session stays ready meanwhile');
      await relay.up();

      const final = await watch;
      assert.is(final.state, 'failed', `expected failed after its servers were killed, got ${final.state}`);
      assert.match(final.error?.message ?? '', /exited with code/);
      assert.ok(final.containers.some((c) => c.exit_code === 137), `expected the killed containers' exit code 137 in the record, got ${JSON.stringify(final.containers.map((c) => [c.role, c.exit_code]))}`);
      await waitFor(`no labelled objects of ${id} left`, noneLeft([id]), 20_000);
    } finally {
      await client?.close().catch(() => undefined);
      await relay.cut();
      await cleanupDaemons(docker, LABEL, [daemon], daemon ? [daemon.dataDir] : []);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  if (RUN_DOCKERD_RESTART) {
    test('dockerd restarted while a session runs: the daemon reconnects and records the session terminal with its objects removed', async () => {
      let daemon: DaemonProcess | undefined;
      let client: Client | undefined;
      try {
        daemon = await startDaemonProcess({ label: LABEL });
        client = await connect({ port: daemon.port });
        const { id } = await client.request<{ id: string }>('session.create', { mode: 'segmented', count: 40_000, rate: 2000 }, { timeoutMs: 60_000 });
        const watch = client.request<SessionView>('session.watch', { id }, { timeoutMs: 180_000 });
        await restartDockerd(docker);
        const final = await watch;
        // Killed with the engine (failed), or, on a slow restart, finished before it went down (completed).
        assert.ok(['failed', 'completed'].includes(final.state), `expected a terminal state, got ${final.state}`);
        await waitFor(`no labelled objects of ${id} left`, noneLeft([id]), 30_000);
        // The reaper follows the new engine: a session created now is reaped as usual.
        const after = await client.request<{ id: string }>('session.create', { mode: 'segmented', count: 1000 }, { timeoutMs: 60_000 });
        assert.is((await client.request<SessionView>('session.watch', { id: after.id }, { timeoutMs: 60_000 })).state, 'completed');
      } finally {
        await client?.close().catch(() => undefined);
        await ensureDockerd(docker);
        await cleanupDaemons(docker, LABEL, [daemon], daemon ? [daemon.dataDir] : []);
      }
    });
  } else {
    console.warn('\n!!! SKIPPED integration/daemon-engine-restart "dockerd restarted": it stops the shared dockerd; set EDGEECHO_TEST_DOCKERD_RESTART=1 (or EDGEECHO_REQUIRE_DOCKER=1) to run it !!!\n');
  }
}

function dockerdPid(): number | null {
  if (!existsSync(DOCKERD_PID_FILE)) return null;
  const pid = Number(readFileSync(DOCKERD_PID_FILE, 'utf8').trim());
  return Number.isInteger(pid) && pid > 1 && alive(pid) ? pid : null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function restartDockerd(docker: Docker): Promise<void> {
  const pid = dockerdPid();
  if (pid === null) throw new Error(`expected dockerd's pid in ${DOCKERD_PID_FILE}; cannot restart an engine this test did not find`);
  // Started again with the environment it had (e.g. DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1), as it was found.
  const env = dockerdEnv(pid);
  process.kill(pid, 'SIGTERM');
  await waitFor(`dockerd (pid ${pid}) to exit after SIGTERM`, async () => (alive(pid) ? undefined : true), 60_000, 250);
  startDockerd(env);
  await waitFor('docker info to answer after restarting dockerd', async () => ((await docker.ping()) ? true : undefined), 60_000, 500);
}

function dockerdEnv(pid: number): NodeJS.ProcessEnv {
  try {
    const pairs = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
    return Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
  } catch {
    return process.env;
  }
}

function startDockerd(env: NodeJS.ProcessEnv = process.env): void {
  const out = openSync(DOCKERD_LOG, 'a');
  try {
    spawn('dockerd', [], { detached: true, stdio: ['ignore', out, out], env }).unref();
  } finally {
    closeSync(out);
  }
}

/** Later tests need the engine: start dockerd again if this test left it down. */
async function ensureDockerd(docker: Docker): Promise<void> {
  if (await docker.ping().then(() => true, () => false)) return;
  if (dockerdPid() === null) startDockerd();
  await waitFor('docker info to answer (dockerd must be running after this test)', async () => ((await docker.ping()) ? true : undefined), 90_000, 500);
}

test.run();

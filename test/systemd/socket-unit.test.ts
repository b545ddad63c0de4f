/**
 * edgeecho.socket under a real systemd (test/systemd/systemd-box.ts), enabled as README's "or: edgeecho.socket"
 * says: systemd listens, the first connection starts the service, the daemon serves both passed descriptors, and
 * the sockets outlive restarts and stops of the service, so no client is refused meanwhile.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSession, TCP, UNIX, watchSession } from './box-sessions.js';
import { readmeSystemdSteps } from './readme-steps.js';
import { boxPerFile, dockerForBoxesOrSkip, type SystemdBox } from './systemd-box.js';
import { listeningLine, mainPid, runningAgain, SERVICE, SOCKET } from './unit-state.js';

const docker = await dockerForBoxesOrSkip('systemd/socket-unit');
const SOCKET_PATH = '/run/edgeecho/edgeecho.sock';
/** Long enough for two restarts of the service, each a graceful stop and a start that builds nothing. */
const LOOP_MS = 9_000;


interface LoopResult {
  attempts: number;
  greeted: number;
  failures: Array<{ target: string; error: string; after_ms: number }>;
}

/** Connects over both sockets again and again inside the box for LOOP_MS (test/systemd/fixtures/connect-loop.mjs). */
async function connectLoop(b: SystemdBox): Promise<LoopResult> {
  const spec = { targets: [{ host: '127.0.0.1', port: 7411 }, { path: SOCKET_PATH }], durationMs: LOOP_MS };
  const out = await b.sh(`node ${b.dir}/test/systemd/fixtures/connect-loop.mjs '${JSON.stringify(spec)}'`, LOOP_MS + 40_000);
  return JSON.parse(out) as LoopResult;
}

if (docker) {
  const box = boxPerFile(test, docker, { area: 'socket' });

  test('enable --now edgeecho.socket: systemd listens, and the first connection starts the service on both descriptors', async () => {
    const b = await box();
    const enable = readmeSystemdSteps().enable;
    assert.match(enable, SERVICE);
    await b.sh(enable.replace(SERVICE, SOCKET));
    assert.is((await b.show(SOCKET, ['ActiveState'])).ActiveState, 'active');
    assert.is((await b.show(SERVICE, ['ActiveState'])).ActiveState, 'inactive', 'nothing connected yet');
    assert.is((await b.sh(`stat -c '%U:%G %a' ${SOCKET_PATH}`)).trim(), 'edgeecho:edgeecho 660');

    const first = await b.edgeecho(['session', 'ls', '--json', ...TCP]);
    assert.is(first.code, 0, first.stderr);
    assert.is((await b.show(SERVICE, ['ActiveState'])).ActiveState, 'active');
    const listening = await listeningLine(b, await mainPid(b));
    const listeners = listening.listeners as Array<{ name: string; address: { host?: string; port?: number; path?: string } }>;
    assert.ok(listeners.every((l) => l.name.startsWith('systemd:')), `only the passed descriptors: ${JSON.stringify(listeners)}`);
    assert.equal(listeners.map((l) => l.address.path ?? `${l.address.host}:${l.address.port}`).sort(), [SOCKET_PATH, '127.0.0.1:7411'].sort());

    const ids = await Promise.all([createSession(b, UNIX, ['--plain', '--count', '500']), createSession(b, TCP, ['--plain', '--count', '500'])]);
    const finals = await Promise.all([watchSession(b, TCP, ids[0]!), watchSession(b, UNIX, ids[1]!)]);
    assert.equal(finals.map((s) => s.state), ['completed', 'completed']);
  });

  test('restarts of the service keep the sockets: every connection meanwhile gets its greeting, none is refused', async () => {
    const b = await box();
    const old = await mainPid(b);
    const loop = connectLoop(b);
    await new Promise((r) => setTimeout(r, 1_000));
    await b.sh(`systemctl restart ${SERVICE}`);
    await new Promise((r) => setTimeout(r, 2_000));
    await b.sh(`systemctl restart ${SERVICE}`);
    const result = await loop;
    assert.equal(result.failures, [], JSON.stringify(result));
    assert.ok(result.greeted >= 20, `expected steady connections during ${LOOP_MS} ms, got ${JSON.stringify(result)}`);
    assert.is.not(await mainPid(b), old);
  });

  test('after systemctl stop the socket still listens, and the next connection starts the service again', async () => {
    const b = await box();
    const old = await mainPid(b);
    await b.sh(`systemctl stop ${SERVICE}`);
    assert.equal(await b.show(SERVICE, ['ActiveState', 'Result']), { ActiveState: 'inactive', Result: 'success' });
    assert.is((await b.show(SOCKET, ['ActiveState'])).ActiveState, 'active');
    const since = Date.now();
    const ls = await b.edgeecho(['session', 'ls', '--json', ...UNIX]);
    assert.is(ls.code, 0, ls.stderr);
    await runningAgain(b, old, since);
  });
}

test.run();

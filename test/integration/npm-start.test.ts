/**
 * `npm start` runs `sh -c <script>`: without `exec` in the script, a SIGTERM to npm's pid (what a supervisor
 * or a shell's `kill` sends) ended npm and sh and left the daemon running, orphaned. Start through npm, SIGTERM
 * the pid we got, and expect the daemon's own graceful shutdown and its port freed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { dockerOrSkip } from '../support/docker.js';
import { cleanupDaemons, runLabel, startDaemonProcess, waitFor, type DaemonProcess } from '../../support/daemon-process.js';

const LABEL = runLabel('npm-start');
const docker = await dockerOrSkip('integration/npm-start');

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const refused = (port: number): Promise<true | undefined> =>
  new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', () => resolve(true));
  });

if (docker) {
  test('SIGTERM to the pid of `npm start` reaches the daemon: graceful shutdown, exit, port freed, no orphan', async () => {
    let npm: DaemonProcess | undefined;
    let daemonPid = 0;
    try {
      npm = await startDaemonProcess({ label: LABEL, viaNpmStart: true, env: { EDGEECHO_BUILD_IMAGES: 'false' } });
      daemonPid = (await npm.waitForLog((l) => l.msg === 'listening')).pid as number;
      assert.ok(daemonPid > 0 && daemonPid !== npm.pid, 'the daemon is npm\'s child, not npm');
      const exit = await npm.kill('SIGTERM', 15_000);
      assert.ok(npm.logs.some((l) => l.msg === 'stopping' && l.signal === 'SIGTERM'), 'the daemon saw the SIGTERM');
      assert.ok(npm.logs.some((l) => l.msg === 'shut down'), 'and shut down gracefully');
      await waitFor('the daemon process to exit', async () => (alive(daemonPid) ? undefined : true), 5000, 50);
      assert.ok(exit.code === 0 || exit.signal === 'SIGTERM', `npm ended with the daemon: ${JSON.stringify(exit)}`);
      await waitFor(`port ${npm.port} to be freed`, () => refused(npm!.port), 5000, 50);
    } finally {
      // with the bug this test pins down, the daemon outlives npm: it is ours, so it must not outlive the test
      if (daemonPid && alive(daemonPid)) process.kill(daemonPid, 'SIGKILL');
      await cleanupDaemons(docker, LABEL, [npm], []);
    }
  });
}

test.run();

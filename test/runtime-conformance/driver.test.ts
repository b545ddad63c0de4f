/**
 * The RuntimeDriver contract on every runtime: a ready line printed at once is caught, the published port is
 * readable after start, stats and listings see the role, a graceful stop lets it print its stats and exit 0,
 * stopping or removing twice is not an error, die events carry the exit code, and an exit before ready rejects
 * with the exit code and the stderr tail. Docker-only matters (hardening, subnets) stay in integration/driver.
 */
import { test as baseTest } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config.js';
import type { ContainerSpec, NetworkRef, RuntimeEvent } from '../../src/runtime/driver.js';
import { newSessionId } from '../../src/sessions/session-id.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { removeSessions } from '../../support/reaping-fixtures.js';
import { nodeRoleSpec, TEST_LABELS, runtimesUnderTest, type RuntimeUnderTest } from './runtimes.js';

const runtimes = await runtimesUnderTest('driver');
const { config } = loadConfig({ env: {} });

for (const rt of runtimes) suite(rt);

function suite(rt: RuntimeUnderTest): void {
  const { driver } = rt;
  const test = (name: string, fn: () => Promise<void>): void => baseTest(`[${rt.name}] ${name}`, fn);
  const sessions = new Set<string>();
  const spec = (session: string, network: NetworkRef, script: string): ContainerSpec => nodeRoleSpec(session, network, script, config);

  test('ready line printed at once is caught; port published; stats; listing; graceful stop; events; logs', async () => {
    const session = newSessionId();
    sessions.add(session);
    const events: RuntimeEvent[] = [];
    const controller = new AbortController();
    const since = Math.floor(Date.now() / 1000) - 1;
    try {
      const network = await driver.createNetwork({ session, name: `edgeecho-${session}-net`, labels: TEST_LABELS });
      // The handler before the ready line, as the emulators do: a local stop can follow the line within a millisecond.
      const script = `process.on('SIGTERM', () => { console.log(JSON.stringify({event:'stats',role:'probe',lost:0})); process.exit(0); }); require('net').createServer().listen(Number(process.env.PORT)); console.log(JSON.stringify({event:'ready',role:'probe'}));`;
      const ref = await driver.createContainer(spec(session, network, script));
      await driver.startContainer(ref.id);
      const ready = await driver.waitReady(ref.id, { timeoutMs: 10_000 });
      assert.equal(ready, { event: 'ready', role: 'probe' });
      const state = await driver.inspectContainer(ref.id);
      assert.is(state.session, session);
      assert.is(state.role, 'probe');
      assert.is(state.running, true);
      assert.is(state.published?.host, await rt.publishedHost());
      assert.ok(state.published!.port > 0);
      // Docker can answer an empty reading on a loaded machine: its driver says so (an error) rather than zeros.
      let usage = await driver.stats(ref.id).catch(() => null);
      for (let i = 0; i < 30 && !usage; i++) usage = (await new Promise((r) => setTimeout(r, 500)), await driver.stats(ref.id).catch(() => null));
      assert.ok(usage, 'a real stats reading within 15 s');
      assert.ok(usage.memoryBytes > 0, `memory ${usage.memoryBytes}`);
      assert.is(usage.memoryLimitBytes, config.limitsProbe.memoryBytes);
      const managed = await driver.listManaged();
      assert.ok(managed.containers.some((c) => c.id === ref.id && c.running));
      assert.ok(managed.networks.some((n) => n.id === network.id && n.session === session));
      await driver.stopContainer(ref.id, 5);
      const stopped = await driver.inspectContainer(ref.id);
      assert.is(stopped.running, false);
      assert.is(stopped.exitCode, 0);
      assert.ok(stopped.finishedAt, 'finishedAt set');
      assert.match(await driver.logs(ref.id, 10), '"event":"stats"');
      await driver.stopContainer(ref.id, 1); // already stopped: not an error
      await driver.removeContainer(ref.id);
      await driver.removeContainer(ref.id); // already gone: not an error
      const gone = await driver.inspectContainer(ref.id).then(
        () => null,
        (e: EdgeechoError) => e,
      );
      assert.is(gone?.code, 'NOT_FOUND');
      await driver.removeNetwork(network.id);
      for await (const e of driver.events({ since, signal: controller.signal })) {
        if (e.session === session) events.push(e);
        if (e.session === session && e.action === 'destroy' && e.type === 'container') break;
      }
      assert.ok(events.some((e) => e.action === 'die' && e.exitCode === 0 && e.role === 'probe'), JSON.stringify(events));
      assert.is(await rt.leftovers(session), 0);
    } finally {
      controller.abort();
      await removeSessions(driver, sessions);
    }
  });

  test('exit before ready rejects with the exit code and stderr tail', async () => {
    const session = newSessionId();
    sessions.add(session);
    try {
      const network = await driver.createNetwork({ session, name: `edgeecho-${session}-net`, labels: TEST_LABELS });
      const ref = await driver.createContainer(spec(session, network, `console.error('cannot bind: EADDRINUSE'); process.exit(3)`));
      await driver.startContainer(ref.id);
      const err = await driver.waitReady(ref.id, { timeoutMs: 10_000 }).then(
        () => null,
        (e: EdgeechoError) => e,
      );
      assert.match(err!.message, 'exited with code 3');
      assert.match(err!.message, 'cannot bind: EADDRINUSE');
      assert.is((await driver.inspectContainer(ref.id)).exitCode, 3);
    } finally {
      await removeSessions(driver, sessions);
    }
  });

  test('a role ignoring SIGTERM is killed after the stop timeout; its die event reports 137', async () => {
    const session = newSessionId();
    sessions.add(session);
    const controller = new AbortController();
    const since = Math.floor(Date.now() / 1000) - 1;
    try {
      const network = await driver.createNetwork({ session, name: `edgeecho-${session}-net`, labels: TEST_LABELS });
      const ref = await driver.createContainer(spec(session, network, `process.on('SIGTERM', () => {}); console.log(JSON.stringify({event:'ready',role:'probe'})); setInterval(() => {}, 1e6)`));
      await driver.startContainer(ref.id);
      await driver.waitReady(ref.id, { timeoutMs: 10_000 });
      const t0 = Date.now();
      await driver.stopContainer(ref.id, 1);
      const took = Date.now() - t0;
      assert.ok(took >= 900 && took < 8_000, `stop took ${took} ms`);
      assert.is((await driver.inspectContainer(ref.id)).exitCode, 137);
      for await (const e of driver.events({ since, signal: controller.signal })) {
        if (e.session === session && e.action === 'die') {
          assert.is(e.exitCode, 137);
          break;
        }
      }
    } finally {
      controller.abort();
      await removeSessions(driver, sessions);
    }
  });
}

baseTest.run();

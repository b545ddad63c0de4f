/**
 * edgeecho.service under a real systemd (PID 1 in a container, test/systemd/systemd-box.ts), installed with the
 * README's steps: Type=notify readiness and status, journald, the account and hardening, sessions over both
 * listeners, the watchdog, kill -9, restart and stop. Sessions are real containers on the shared engine, labelled
 * for this box and removed by box.remove().
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { noneLeft, waitFor } from '../../support/daemon-process.js';
import { createSession, getSession, TCP, UNIX, watchSession } from './box-sessions.js';
import { readmeSystemdSteps } from './readme-steps.js';
import { boxPerFile, dockerForBoxesOrSkip } from './systemd-box.js';
import { linesOf, listeningLine, mainPid, runningAgain, SERVICE as UNIT, systemdLines } from './unit-state.js';

const docker = await dockerForBoxesOrSkip('systemd/service-unit');
/** The unit's TimeoutStopSec: a graceful stop must end well within it. */
const TIMEOUT_STOP_MS = 30_000;
/** A drop-in shortens the unit's 30 s watchdog so the test waits seconds, not half a minute. */
const TEST_WATCHDOG_S = 4;
/** Segmented sessions of about 8 s: long enough to outlive a restart. */
const LONG_SESSION = ['--segmented', '--count', '24000', '--rate', '3000'];

if (docker) {
  const box = boxPerFile(test, docker, { area: 'service', env: { EDGEECHO_TEST_HOOKS: '1' } });

  test('README install, enable --now: active only after READY=1, with the status text, JSON in journald, as edgeecho with docker, hardened', async () => {
    const b = await box();
    await b.sh(readmeSystemdSteps().enable);
    const pid = await mainPid(b);
    const status = await b.sh(`systemctl status --no-pager ${UNIT}`);
    assert.match(status, 'Active: active (running)');
    assert.match(status, 'Status: "listening on 127.0.0.1:7411, /run/edgeecho/edgeecho.sock"');
    // systemd entered "active" only after the daemon had listened, i.e. on READY=1, not when the process started.
    const listening = await listeningLine(b, pid);
    assert.is(typeof listening.level, 'number', 'journald holds the daemon\'s pino JSON lines');
    const times = await b.sh(`systemctl show --timestamp=us+utc -p ExecMainStartTimestamp -p ActiveEnterTimestamp ${UNIT}`);
    const at = (key: string): number => Date.parse(new RegExp(`${key}=\\w+ (\\S+ \\S+) UTC`).exec(times)![1]!.replace(' ', 'T') + 'Z');
    assert.ok(at('ExecMainStartTimestamp') <= (listening.time as number), times);
    assert.ok((listening.time as number) <= at('ActiveEnterTimestamp') + 1, `active at ${at('ActiveEnterTimestamp')} before the daemon listened at ${listening.time}`);

    const proc = await b.sh(`cat /proc/${pid}/status`);
    const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(proc)![1]!.trim();
    const [uid, dockerGid] = (await b.sh('id -u edgeecho; getent group docker | cut -d: -f3')).trim().split('\n');
    assert.is(field('Uid').split(/\s+/)[0], uid);
    assert.ok(field('Groups').split(/\s+/).includes(dockerGid!), `docker group ${dockerGid} in ${field('Groups')}`);
    assert.is(field('NoNewPrivs'), '1');
    assert.is(field('CapEff'), '0000000000000000');
    assert.is(field('CapBnd'), '0000000000000000');
    assert.is(field('Seccomp'), '2', 'SystemCallFilter applied');
    // Every option was understood: systemd names the unit file and the line of any it ignores.
    const complaints = (await systemdLines(b)).filter((m) => /unknown|ignoring|failed to parse|not supported/i.test(m));
    assert.equal(complaints, []);
    assert.not.match(await b.sh('journalctl --no-pager -b -o cat _PID=1'), /edgeecho\.service:\d+:/);
  });

  test('a plain session over the unix socket and one over TCP both complete and leave nothing behind', async () => {
    const b = await box();
    const [overUnix, overTcp] = await Promise.all([createSession(b, UNIX, ['--plain', '--count', '500']), createSession(b, TCP, ['--plain', '--count', '500'])]);
    const finals = await Promise.all([watchSession(b, UNIX, overUnix), watchSession(b, TCP, overTcp)]);
    assert.equal(finals.map((s) => s.state), ['completed', 'completed']);
    assert.ok(finals.every((s) => s.containers.every((c) => c.exit_code === 0)), JSON.stringify(finals));
    await waitFor('no container or network of the two sessions left', noneLeft(docker, b.label, [overUnix, overTcp]), 15_000);
  });

  test(`watchdog: pings keep a healthy daemon alive past WatchdogSec; a blocked event loop is killed and restarted`, async () => {
    const b = await box();
    await b.sh(`mkdir -p /etc/systemd/system/${UNIT}.d && printf '[Service]\\nWatchdogSec=${TEST_WATCHDOG_S}s\\n' > /etc/systemd/system/${UNIT}.d/test-watchdog.conf && systemctl daemon-reload && systemctl restart ${UNIT}`);
    assert.is((await b.show(UNIT, ['WatchdogUSec'])).WatchdogUSec, `${TEST_WATCHDOG_S}s`);
    const healthy = await mainPid(b);
    const before = Number((await b.show(UNIT, ['NRestarts'])).NRestarts);
    await new Promise((r) => setTimeout(r, (TEST_WATCHDOG_S + 2) * 1000));
    assert.equal(await b.show(UNIT, ['MainPID', 'NRestarts']), { MainPID: String(healthy), NRestarts: String(before) }, 'WATCHDOG=1 pings arrive');

    await b.sh(`kill -USR2 ${healthy}`);
    const blockedAt = Date.now();
    const { ms } = await runningAgain(b, healthy, blockedAt);
    // At most WatchdogSec until the kill, RestartSec (2 s), then the daemon's start.
    assert.ok(ms < (TEST_WATCHDOG_S + 2) * 1000 + 8_000, `restarted after ${ms} ms`);
    assert.ok((await linesOf(b, healthy)).some((l) => /SIGUSR2 \(test hook\)/.test(l.msg ?? '')));
    assert.ok((await systemdLines(b)).some((m) => m.includes('Watchdog timeout')), 'systemd reports the watchdog timeout');
    assert.is(Number((await b.show(UNIT, ['NRestarts'])).NRestarts), before + 1);
  });

  test('kill -9 of the main PID: restarted after RestartSec, running sessions adopted and reaped, nothing leaked', async () => {
    const b = await box();
    const ids = await Promise.all([createSession(b, UNIX, LONG_SESSION), createSession(b, TCP, LONG_SESSION)]);
    const old = await mainPid(b);
    await b.sh(`kill -9 ${old}`);
    const { pid, ms } = await runningAgain(b, old, Date.now());
    assert.ok(ms >= 1_500 && ms < 12_000, `restarted after ${ms} ms (RestartSec=2s)`);
    assert.is((await b.exec(`test -e /proc/${old}`)).code, 1, 'the killed daemon is gone');
    const reconciled = await waitFor('the new daemon\'s reconcile line', async () => (await linesOf(b, pid)).find((l) => l.msg === 'reconciled sessions with the runtime'), 10_000);
    assert.is(reconciled.adopted, 2, JSON.stringify(reconciled));
    for (const id of ids) assert.is((await getSession(b, UNIX, id)).state, 'ready');
    const finals = await Promise.all(ids.map((id) => watchSession(b, UNIX, id)));
    assert.equal(finals.map((s) => s.state), ['completed', 'completed']);
    await waitFor('no container or network of the adopted sessions left', noneLeft(docker, b.label, ids), 15_000);
    // Only the new daemon (and what it spawned) lives in the service's cgroup.
    const procs = (await b.sh(`cg=$(systemctl show -p ControlGroup --value ${UNIT}); cat /sys/fs/cgroup/systemd$cg/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup$cg/cgroup.procs`)).trim().split('\n').map(Number);
    assert.ok(procs.includes(pid) && !procs.includes(old), `cgroup holds ${procs}`);
    for (const p of procs) if (p !== pid) assert.match(await b.sh(`cat /proc/${p}/status`), new RegExp(`^PPid:\\s*${pid}$`, 'm'));
  });

  test('systemctl restart: a graceful stop well within TimeoutStopSec, and running sessions survive it (live restore)', async () => {
    const b = await box();
    const id = await createSession(b, UNIX, LONG_SESSION);
    const containers = (await getSession(b, UNIX, id)).containers.map((c) => c.id);
    const old = await mainPid(b);
    const earlier = (await systemdLines(b)).length;
    const started = Date.now();
    await b.sh(`systemctl restart ${UNIT}`, TIMEOUT_STOP_MS + 15_000);
    const ms = Date.now() - started;
    assert.ok(ms < TIMEOUT_STOP_MS, `restart took ${ms} ms`);
    const oldLines = await linesOf(b, old);
    assert.ok(oldLines.some((l) => l.msg === 'stopping' && l.signal === 'SIGTERM'), 'SIGTERM started the graceful shutdown');
    assert.ok(oldLines.some((l) => l.msg === 'shut down'), 'the old daemon finished its shutdown itself');
    const during = (await systemdLines(b)).slice(earlier);
    assert.not.ok(during.some((m) => /timed out|Killing process|code=killed/.test(m)), `systemd never had to kill: ${during.join(' | ')}`);
    for (const c of containers) assert.is((await docker!.getContainer(c).inspect()).State.Running, true, `container ${c} survived the restart`);
    const pid = await mainPid(b);
    const reconciled = await waitFor('the new daemon\'s reconcile line', async () => (await linesOf(b, pid)).find((l) => l.msg === 'reconciled sessions with the runtime'), 10_000);
    assert.is(reconciled.adopted, 1);
    assert.is((await watchSession(b, TCP, id)).state, 'completed');
  });

  test('systemctl stop: graceful and inactive well within TimeoutStopSec, sessions keep running and are adopted at the next start', async () => {
    const b = await box();
    const id = await createSession(b, UNIX, LONG_SESSION);
    const started = Date.now();
    await b.sh(`systemctl stop ${UNIT}`, TIMEOUT_STOP_MS + 15_000);
    const ms = Date.now() - started;
    assert.ok(ms < TIMEOUT_STOP_MS, `stop took ${ms} ms`);
    assert.equal(await b.show(UNIT, ['ActiveState', 'Result']), { ActiveState: 'inactive', Result: 'success' });
    const containers = await docker!.listContainers({ filters: { label: [`io.edgeecho.session=${id}`] } });
    assert.is(containers.length, 3, 'the segmented session runs on without the daemon');
    await b.sh(`systemctl start ${UNIT}`);
    assert.is((await getSession(b, TCP, id)).state, 'ready');
    assert.is((await watchSession(b, TCP, id)).state, 'completed');
  });

  test('EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN=true in the env file: systemctl stop stops the running sessions', async () => {
    const b = await box();
    await b.setEnv({ EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN: 'true' });
    await b.sh(`systemctl restart ${UNIT}`);
    const id = await createSession(b, UNIX, LONG_SESSION);
    await b.sh(`systemctl stop ${UNIT}`, TIMEOUT_STOP_MS + 15_000);
    assert.is((await b.show(UNIT, ['Result'])).Result, 'success');
    assert.equal(await docker!.listContainers({ all: true, filters: { label: [`io.edgeecho.session=${id}`] } }), []);
    await b.sh(`systemctl start ${UNIT}`);
    assert.is((await getSession(b, UNIX, id)).state, 'stopped');
  });

  test('EDGEECHO_RUNTIME=local with EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN=true (README): its roles run in the unit, a stop ends them gracefully, recorded stopped', async () => {
    const b = await box();
    await b.setEnv({ EDGEECHO_RUNTIME: 'local', EDGEECHO_STOP_SESSIONS_ON_SHUTDOWN: 'true' });
    await b.sh(`systemctl restart ${UNIT}`);
    const id = await createSession(b, UNIX, LONG_SESSION);
    // /proc, not pgrep (a minbase Debian has no procps); [-] keeps the grep's own command line from matching.
    const roles = async (): Promise<number> => Number((await b.sh(`grep -l -a -e '[-]-edgeecho-session=${id}' /proc/[0-9]*/cmdline 2>/dev/null | wc -l`)).trim());
    assert.ok((await roles()) >= 2, 'the local roles run as processes in the box');
    await b.sh(`systemctl stop ${UNIT}`, TIMEOUT_STOP_MS + 15_000);
    assert.is((await b.show(UNIT, ['Result'])).Result, 'success');
    assert.is(await roles(), 0, 'no role outlives the stop');
    await b.sh(`systemctl start ${UNIT}`);
    const record = await getSession(b, UNIX, id);
    assert.is(record.state, 'stopped', JSON.stringify(record));
  });
}

test.run();

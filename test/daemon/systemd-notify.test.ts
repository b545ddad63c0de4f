import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createSystemdNotifier, type RunNotify } from '../../src/daemon/systemd-notify.js';

function recorder(fail = false) {
  const calls: Array<{ command: string; args: string[]; env: NodeJS.ProcessEnv }> = [];
  const run: RunNotify = async (command, args, env) => {
    calls.push({ command, args, env });
    if (fail) throw new Error('systemd-notify: No such file or directory');
  };
  return { calls, run };
}

function fakeIntervals() {
  const timers: Array<{ fn: () => void; ms: number; cleared: boolean }> = [];
  return {
    timers,
    api: {
      setInterval: ((fn: () => void, ms: number) => {
        const t = { fn, ms, cleared: false };
        timers.push(t);
        return t;
      }) as unknown as typeof setInterval,
      clearInterval: ((t: { cleared: boolean }) => void (t.cleared = true)) as unknown as typeof clearInterval,
    },
  };
}

test('outside systemd (no NOTIFY_SOCKET) nothing runs', async () => {
  const r = recorder();
  const n = createSystemdNotifier({ env: { WATCHDOG_USEC: '30000000' }, run: r.run });
  assert.is(n.enabled, false);
  assert.is(n.watchdogIntervalMs, null);
  await n.ready();
  await n.stopping();
  n.startWatchdog()();
  assert.equal(r.calls, []);
});

test('ready, status and stopping run systemd-notify with only NOTIFY_SOCKET and PATH in its environment', async () => {
  const r = recorder();
  const n = createSystemdNotifier({ env: { NOTIFY_SOCKET: '/run/systemd/notify', PATH: '/usr/bin', LISTEN_FDS: '1', EDGEECHO_TOKEN_FILE: '/etc/x' }, run: r.run });
  assert.is(n.enabled, true);
  await n.ready('listening on 127.0.0.1:7411');
  await n.status('2 sessions');
  await n.stopping('draining');
  assert.equal(
    r.calls.map((c) => [c.command, c.args]),
    [
      ['systemd-notify', ['--ready', '--status=listening on 127.0.0.1:7411']],
      ['systemd-notify', ['--status=2 sessions']],
      ['systemd-notify', ['STOPPING=1', '--status=draining']],
    ],
  );
  assert.equal(r.calls[0]!.env, { NOTIFY_SOCKET: '/run/systemd/notify', PATH: '/usr/bin' });
});

test('watchdog: pings WATCHDOG=1 at half of WATCHDOG_USEC, not while one is pending, and stops', async () => {
  let release!: () => void;
  const calls: string[][] = [];
  const run: RunNotify = (_c, args) => {
    calls.push(args);
    return new Promise<void>((resolve) => (release = resolve));
  };
  const t = fakeIntervals();
  const n = createSystemdNotifier({ env: { NOTIFY_SOCKET: '@notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '77' }, pid: 77, run, timers: t.api });
  assert.is(n.watchdogIntervalMs, 15_000);
  const stop = n.startWatchdog();
  assert.is(t.timers.length, 1);
  assert.is(t.timers[0]!.ms, 15_000);
  t.timers[0]!.fn();
  t.timers[0]!.fn();
  assert.equal(calls, [['WATCHDOG=1']], 'a ping still running is not doubled');
  release();
  await new Promise((r) => setImmediate(r));
  t.timers[0]!.fn();
  assert.equal(calls, [['WATCHDOG=1'], ['WATCHDOG=1']]);
  release();
  stop();
  assert.ok(t.timers[0]!.cleared);
});

test('watchdog addressed to another pid, or not asked for, is not started', () => {
  const t = fakeIntervals();
  const other = createSystemdNotifier({ env: { NOTIFY_SOCKET: '@n', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '5' }, pid: 6, run: recorder().run, timers: t.api });
  assert.is(other.watchdogIntervalMs, null);
  other.startWatchdog();
  const none = createSystemdNotifier({ env: { NOTIFY_SOCKET: '@n' }, run: recorder().run, timers: t.api });
  none.startWatchdog();
  assert.is(t.timers.length, 0);
});

test('a failing systemd-notify is logged, not thrown', async () => {
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
  const n = createSystemdNotifier({ env: { NOTIFY_SOCKET: '/run/x' }, run: recorder(true).run, log });
  await n.ready();
  assert.is(lines.length, 1);
  assert.match(lines[0]!, /systemd notification failed/);
  assert.match(lines[0]!, /No such file or directory/);
});

test('the real child-process path: a stand-in systemd-notify receives the arguments and NOTIFY_SOCKET', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-notify-'));
  try {
    const out = join(dir, 'calls');
    const script = join(dir, 'systemd-notify');
    writeFileSync(script, `#!/bin/sh\necho "$NOTIFY_SOCKET|$*|\${LISTEN_FDS:-unset}" >> '${out}'\n`);
    chmodSync(script, 0o755);
    const n = createSystemdNotifier({ env: { NOTIFY_SOCKET: '/run/systemd/notify', PATH: process.env.PATH, LISTEN_FDS: '2' }, command: script });
    await n.ready();
    await n.stopping();
    assert.equal(readFileSync(out, 'utf8').trim().split('\n'), ['/run/systemd/notify|--ready|unset', '/run/systemd/notify|STOPPING=1|unset']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

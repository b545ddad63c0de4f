/**
 * Parking (emulators/CONTRACT.md): with EMULATOR_PARKED=1 an emulator prints its parked line, uses no CPU and
 * runs no idle timeout while parked, then runs as a cold start with its env overlaid by the one JSON line it reads
 * on stdin. A bad line or SIGTERM while parked ends it with a stats line. The bundled emulators run as processes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { warmUp } from '../../emulators/parking.js';
import { emulatorBundle, removeBundle, within } from './run-emulator.js';
import type { Role } from '../../src/runtime/driver.js';

interface Parked {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  /** Resolves with the next stdout line. */
  next(): Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
}

const children = new Set<ChildProcess>();

async function startParked(role: Role, env: Record<string, string>): Promise<Parked> {
  const { files } = await emulatorBundle();
  const child = spawn(process.execPath, [files[role]], { env: { PATH: process.env.PATH ?? '', EMULATOR_PARKED: '1', ...env }, stdio: ['pipe', 'pipe', 'ignore'] });
  children.add(child);
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<(l: Record<string, unknown>) => void> = [];
  let seen = 0;
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(partial.slice(0, nl)) as Record<string, unknown>);
      partial = partial.slice(nl + 1);
      while (waiters.length && seen < lines.length) waiters.shift()!(lines[seen++]!);
    }
  });
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => (children.delete(child), resolve(code))));
  const next = (): Promise<Record<string, unknown>> =>
    seen < lines.length ? Promise.resolve(lines[seen++]!) : within(10_000, `a stdout line from the parked ${role}`, new Promise((resolve) => waiters.push(resolve)));
  return { child, lines, next, exit };
}

/** utime + stime of the process, in clock ticks (usually 10 ms). */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

test('a parked probe prints its parked line, idles at no CPU past its idle timeout, then runs with the line as its env', async () => {
  const probe = await startParked('probe', { PROBE_PORT: '0', PROBE_ID: 'placeholder', PROBE_COUNT: '0', EMULATOR_IDLE_TIMEOUT_MS: '300' });
  assert.equal(await probe.next(), { event: 'parked', role: 'probe' });
  // Node's start-up is done once the parked line is out; what follows is the parked wait itself.
  const before = cpuTicks(probe.child.pid!);
  await new Promise((r) => setTimeout(r, 1500));
  const used = cpuTicks(probe.child.pid!) - before;
  assert.ok(used <= 2, `expected ~0 CPU while parked, used ${used} ticks in 1.5 s`);
  assert.is(probe.child.exitCode, null, 'the idle timeout (300 ms) must not fire while parked');
  probe.child.stdin!.write(JSON.stringify({ PROBE_ID: 's1', PROBE_COUNT: '7', PROBE_PAYLOAD_BYTES: '16', PROBE_RATE: '0' }) + '\n');
  const ready = await probe.next();
  assert.equal({ ...ready, port: 0 }, { event: 'ready', role: 'probe', port: 0, probe_id: 's1', count: 7, payload_bytes: 16, rate: 0 });
  // Unparked, the idle timeout runs again: nothing connects, so it fires.
  assert.is(await within(10_000, 'the idle timeout after unparking', probe.exit), 3);
});

test('a parameter line that is not a JSON object of strings ends a parked emulator with exit 2 and a stats line', async () => {
  for (const line of ['not json', '{"STREAM_MODE": 1}', '[]']) {
    const stream = await startParked('stream', {});
    await stream.next();
    stream.child.stdin!.write(line + '\n');
    const stats = await stream.next();
    assert.is(stats.event, 'stats');
    assert.match(String(stats.error), /parameter line/);
    assert.is(await stream.exit, 2);
  }
});

test('stdin closing or SIGTERM while parked ends it with a stats line saying so', async () => {
  const closed = await startParked('segmentation', {});
  await closed.next();
  closed.child.stdin!.end();
  assert.match(String((await closed.next()).error), /stdin closed while parked/);
  assert.is(await closed.exit, 2);

  const termed = await startParked('segmentation', {});
  await termed.next();
  termed.child.kill('SIGTERM');
  assert.match(String((await termed.next()).error), /SIGTERM while parked/);
  assert.is(await termed.exit, 143);
});

test('the warm-up before parking makes its loopback round trip and leaves no socket or server open', async () => {
  const tcp = (): number => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length;
  const before = tcp();
  await within(2_000, 'the warm-up', warmUp());
  await new Promise((r) => setTimeout(r, 50));
  assert.is(tcp(), before);
});

test.after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await removeBundle();
});

test.run();

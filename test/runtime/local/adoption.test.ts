/**
 * Crash safety of the local runtime with real processes: a driver started after the one that spawned a role
 * (the daemon restarted) adopts it, notices its exit through /proc and reports the code its exit recorder left;
 * a process started just before a crash recorded its pid is found by its command-line marker; and a recorded
 * pid that now names another process (pid reuse) is never signalled.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/log.js';
import type { ContainerSpec, NetworkRef, RuntimeEvent } from '../../../src/runtime/driver.js';
import { LocalDriver } from '../../../src/runtime/local/driver.js';
import { localLayout } from '../../../src/runtime/local/layout.js';
import { localRuntime } from '../../../src/runtime/local/local-runtime.js';
import { identityOf, readProcStat } from '../../../src/runtime/local/proc.js';
import { RecordFiles, type ProcessRecord } from '../../../src/runtime/local/records.js';
import { spawnRole } from '../../../src/runtime/local/spawn-role.js';

const dataDir = mkdtempSync(join(tmpdir(), 'edgeecho-local-adoption-'));
const layout = localLayout(dataDir);
const runtime = localRuntime({ dataDir, publishHost: '127.0.0.1' }, silentLogger);
await runtime.prepare({});
const limits = { memoryBytes: 64 * 1024 * 1024, nanoCpus: 0.5e9, pids: 32 };
const fresh = (): LocalDriver => new LocalDriver({ layout, publishHost: '127.0.0.1', adoptedWatchMs: 50 });
/** Running, zombies excluded: this test process is the parent of some roles and reaps them a little later. */
const alive = (pid: number): boolean => {
  const stat = readProcStat(pid);
  return stat !== null && stat.state !== 'Z';
};

function spec(session: string, network: NetworkRef, script: string): ContainerSpec {
  return { session, role: 'probe', name: `edgeecho-${session}-probe`, image: 'unused', network, aliases: ['probe'], env: {}, labels: {}, limits, command: ['node', '-e', script] };
}

async function firstEvent(driver: LocalDriver, match: (e: RuntimeEvent) => boolean, timeoutMs: number): Promise<RuntimeEvent> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    for await (const e of driver.events({ since: Math.floor(Date.now() / 1000) - 5, signal: controller.signal })) if (match(e)) return e;
    throw new Error(`no matching event within ${timeoutMs} ms`);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

test('a driver started later adopts a live role, sees it exit through /proc, and reports its exit code', async () => {
  const first = runtime.driver;
  const network = await first.createNetwork({ session: 'adopt1', name: 'edgeecho-adopt1-net', labels: {} });
  const ref = await first.createContainer(spec('adopt1', network, `console.log(JSON.stringify({event:'ready'})); setTimeout(() => process.exit(5), 1200)`));
  await first.startContainer(ref.id);
  await first.waitReady(ref.id, { timeoutMs: 10_000 });
  const second = fresh();
  try {
    assert.is((await second.inspectContainer(ref.id)).running, true, 'adopted as running');
    const die = await firstEvent(second, (e) => e.id === ref.id && e.action === 'die', 10_000);
    assert.is(die.exitCode, 5, 'the exit recorder left the code for a driver that is not the parent');
    const state = await second.inspectContainer(ref.id);
    assert.is(state.exitCode, 5);
    assert.ok(state.finishedAt);
    await second.removeContainer(ref.id);
    await second.removeNetwork(network.id);
    assert.equal((await fresh().listManaged()).containers, []);
  } finally {
    second.close();
  }
});

test('a process spawned just before a crash recorded its pid is found by its marker, adopted and stopped', async () => {
  const first = runtime.driver;
  const network = await first.createNetwork({ session: 'mark1', name: 'edgeecho-mark1-net', labels: {} });
  const script = `process.on('SIGTERM', () => process.exit(0)); console.log(JSON.stringify({event:'ready'})); setInterval(() => {}, 1e6)`;
  const ref = await first.createContainer(spec('mark1', network, script));
  const files = new RecordFiles(layout.sessions);
  const record = { session: 'mark1', role: 'probe' as const };
  // The spawn happened; the record still says `created` (the daemon died before writing the pid).
  const child = await spawnRole({
    id: ref.id,
    session: 'mark1',
    command: ['node', '-e', script],
    env: {},
    memoryBytes: limits.memoryBytes,
    exitRecorder: layout.exitRecorder,
    stdoutPath: files.file(record, 'stdout'),
    stderrPath: files.file(record, 'stderr'),
    exitPath: files.file(record, 'exit'),
  });
  const second = fresh();
  try {
    const state = await second.inspectContainer(ref.id);
    assert.is(state.running, true, 'the marked process was adopted');
    // Its SIGTERM handler is installed once it printed the ready line (node may take a while to start).
    await second.waitReady(ref.id, { timeoutMs: 10_000 });
    await second.stopContainer(ref.id, 5);
    assert.not.ok(alive(child.pid!), 'stopped');
    assert.is((await second.inspectContainer(ref.id)).exitCode, 0);
    await second.removeContainer(ref.id);
    await second.removeNetwork(network.id);
  } finally {
    second.close();
    if (alive(child.pid!)) process.kill(child.pid!, 'SIGKILL');
  }
});

test('a recorded pid that now names another process (pid reuse) is never signalled', async () => {
  const stranger = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { detached: true, stdio: 'ignore' });
  try {
    const files = new RecordFiles(layout.sessions);
    const identity = identityOf(stranger.pid!)!;
    const record: ProcessRecord = {
      id: 'reused0000000000',
      name: 'edgeecho-reuse1-probe',
      session: 'reuse1',
      role: 'probe',
      network: 'none',
      labels: {},
      command: ['node'],
      env: {},
      memoryBytes: limits.memoryBytes,
      nanoCpus: limits.nanoCpus,
      created: new Date().toISOString(),
      status: 'running',
      // Same pid, another start time: the process this runtime started is gone and the pid was handed out again.
      process: { ...identity, startTime: identity.startTime - 1 },
      startedAt: new Date().toISOString(),
      finishedAt: null,
      exitCode: null,
      oomKilled: false,
    };
    files.saveProcess(record);
    const driver = fresh();
    try {
      const state = await driver.inspectContainer(record.id);
      assert.is(state.running, false, 'judged exited, not alive');
      assert.is(state.exitCode, null, 'no code is made up');
      await driver.stopContainer(record.id, 1);
      await driver.removeContainer(record.id);
      assert.ok(alive(stranger.pid!), 'the stranger was not signalled');
      assert.equal((await driver.listManaged()).containers.filter((c) => c.session === 'reuse1'), []);
    } finally {
      driver.close();
    }
  } finally {
    stranger.kill('SIGKILL');
  }
});

test.after(() => {
  runtime.close?.();
  rmSync(dataDir, { recursive: true, force: true });
});

test.run();

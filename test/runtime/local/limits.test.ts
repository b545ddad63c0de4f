/**
 * What the local runtime enforces, with real processes: the V8 heap ceiling from the role's memory limit (a role
 * that outgrows it dies and is recorded as out of memory), niceness once ready, its own process group, and a
 * clean environment (nothing of the daemon's env but PATH reaches a role), and log files held to their bound.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/log.js';
import type { ContainerSpec, NetworkRef } from '../../../src/runtime/driver.js';
import { LocalDriver } from '../../../src/runtime/local/driver.js';
import { localLayout } from '../../../src/runtime/local/layout.js';
import { localRuntime } from '../../../src/runtime/local/local-runtime.js';
import { readProcStat } from '../../../src/runtime/local/proc.js';
import { DEFAULT_NICENESS, heapMb } from '../../../src/runtime/local/spawn-role.js';
import { EdgeechoError } from '../../../protocol/errors.js';

const dataDir = mkdtempSync(join(tmpdir(), 'edgeecho-local-limits-'));
const runtime = localRuntime({ dataDir, publishHost: '127.0.0.1' }, silentLogger);
await runtime.prepare({});
const { driver } = runtime;

function spec(session: string, network: NetworkRef, script: string, memoryBytes: number): ContainerSpec {
  return { session, role: 'probe', name: `edgeecho-${session}-probe`, image: 'unused', network, aliases: ['probe'], env: {}, labels: {}, limits: { memoryBytes, nanoCpus: 0.5e9, pids: 32 }, command: ['node', '-e', script] };
}

test('a ready role runs niced, in its own process group, under a heap ceiling, with a clean env', async () => {
  process.env.EDGEECHO_LIMITS_TEST_SECRET = 'daemon-only';
  const network = await driver.createNetwork({ session: 'lim1', name: 'edgeecho-lim1-net', labels: {} });
  const script = `console.log(JSON.stringify({event:'ready', heap: require('v8').getHeapStatistics().heap_size_limit, secret: process.env.EDGEECHO_LIMITS_TEST_SECRET ?? null})); setInterval(() => {}, 1e6)`;
  const ref = await driver.createContainer(spec('lim1', network, script, 128 * 1024 * 1024));
  try {
    await driver.startContainer(ref.id);
    const ready = await driver.waitReady(ref.id, { timeoutMs: 10_000 });
    assert.is(ready.secret, null, 'the daemon env does not leak into a role');
    assert.ok((ready.heap as number) <= (heapMb(128 * 1024 * 1024) + 64) * 1024 * 1024, `heap limit ${ready.heap}`);
    const pid = Number(JSON.parse(readFileSync(join(dataDir, 'local', 'sessions', 'lim1', 'probe.json'), 'utf8')).process.pid);
    const stat = readProcStat(pid)!;
    assert.is(stat.pgrp, pid, 'leader of its own process group');
    assert.is(stat.niceness, DEFAULT_NICENESS);
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), `--max-old-space-size=${heapMb(128 * 1024 * 1024)}`);
  } finally {
    delete process.env.EDGEECHO_LIMITS_TEST_SECRET;
    await driver.removeContainer(ref.id);
    await driver.removeNetwork(network.id);
  }
});

test('a role outgrowing its heap ceiling dies and is recorded as out of memory', async () => {
  const network = await driver.createNetwork({ session: 'lim2', name: 'edgeecho-lim2-net', labels: {} });
  const script = `const keep = []; for (;;) keep.push(new Array(1e5).fill({ x: Math.random() }));`;
  const ref = await driver.createContainer(spec('lim2', network, script, 32 * 1024 * 1024));
  try {
    await driver.startContainer(ref.id);
    const err = await driver.waitReady(ref.id, { timeoutMs: 30_000 }).then(
      () => null,
      (e: EdgeechoError) => e,
    );
    assert.ok(err, 'it never gets ready');
    assert.match(err!.message, /out of memory/);
    const state = await driver.inspectContainer(ref.id);
    assert.is(state.oomKilled, true);
    assert.ok((state.exitCode ?? 0) > 128, `killed by a signal: ${state.exitCode}`);
  } finally {
    await driver.removeContainer(ref.id);
    await driver.removeNetwork(network.id);
  }
});

test('a role writing without end has its log files held to the bound while it runs', async () => {
  const bounded = new LocalDriver({ layout: localLayout(dataDir), publishHost: '127.0.0.1', logMaxBytes: 64 * 1024, logBoundEveryMs: 100, adoptedWatchMs: 50 });
  const network = await bounded.createNetwork({ session: 'lim3', name: 'edgeecho-lim3-net', labels: {} });
  const script = `console.log(JSON.stringify({event:'ready'})); const line = 'x'.repeat(200) + '\\n'; setInterval(() => { for (let i = 0; i < 100; i++) process.stderr.write(line); }, 5);`;
  const ref = await bounded.createContainer(spec('lim3', network, script, 64 * 1024 * 1024));
  try {
    await bounded.startContainer(ref.id);
    await bounded.waitReady(ref.id, { timeoutMs: 10_000 });
    // About 4 MB a second is written; without the bound the file would hold megabytes by now.
    await new Promise((r) => setTimeout(r, 1500));
    const text = readFileSync(join(dataDir, 'local', 'sessions', 'lim3', 'probe.stderr'), 'utf8');
    assert.ok(text.length < 1024 * 1024, `stderr holds ${text.length} bytes`);
    assert.match(text, /^\[edgeecho: \d+ earlier bytes cut at the log bound of 65536\]/);
  } finally {
    await bounded.removeContainer(ref.id);
    await bounded.removeNetwork(network.id);
    bounded.close();
  }
});

test.after(() => {
  runtime.close?.();
  rmSync(dataDir, { recursive: true, force: true });
});

test.run();

/**
 * How sessions end on a real daemon process, seen through session.watch: a session.stop mid-stream ends it
 * stopped, and a session left alone ends completed, each with its emulators' final stats and nothing left.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Client, type StatusFrame } from '../../src/client/index.js';
import { dockerOrSkip } from '../support/docker.js';
import { runLabel, cleanupDaemons, startDaemonProcess, waitFor, noneLeft as sharedNoneLeft, type DaemonProcess, type SessionView } from '../../support/daemon-process.js';

const LABEL = runLabel('daemon-session-end');
const docker = await dockerOrSkip('integration/daemon-session-end');


const noneLeft = (ids: string[]) => sharedNoneLeft(docker!, LABEL, ids);

if (docker) {
  let daemon: DaemonProcess | undefined;
  let client: Client | undefined;

  test.before(async () => {
    daemon = await startDaemonProcess({ label: LABEL });
    client = await connect({ port: daemon.port });
  });

  test.after(async () => {
    await client?.close().catch(() => undefined);
    await cleanupDaemons(docker, LABEL, [daemon], daemon ? [daemon.dataDir] : []);
  });

  test('session.stop of a running session: the watcher sees stopping then stopped, with the servers\' final stats', async () => {
    // 20 s of frames at 2000/s: still running when the stop comes.
    const { id } = await client!.request<{ id: string }>('session.create', { mode: 'segmented', count: 40_000, rate: 2000 }, { timeoutMs: 60_000 });
    const frames: StatusFrame[] = [];
    const watch = client!.request<SessionView>('session.watch', { id }, { onStatus: (f) => frames.push(f), timeoutMs: 60_000 });
    await waitFor('the watch to report the ready session', async () => (frames.some((f) => f.session_state === 'ready') ? true : undefined), 10_000, 20);

    // Usage is there as soon as resources {fresh} answers (a sample begun after the ask), not a scheduled tick later.
    // (The engine can answer an empty stats reading on a loaded host: that container is then left out, so ask a few times.)
    let running: SessionView & { usage?: { containers: number; memory_bytes: number } } = await client!.request('session.get', { id });
    for (let i = 0; i < 5 && !(running.usage && running.usage.containers >= 2); i++) {
      await client!.request('resources', { fresh: true }, { timeoutMs: 30_000 });
      running = await client!.request('session.get', { id });
    }
    assert.ok(running.usage && running.usage.containers >= 2 && running.usage.memory_bytes > 0, `usage of a running session: ${JSON.stringify(running.usage)}`);

    const stopped = await client!.request<SessionView>('session.stop', { id }, { timeoutMs: 60_000 });
    const after = await client!.request<SessionView & { usage?: unknown }>('session.get', { id });
    assert.is(after.usage, undefined, 'a finished session shows no usage');
    const watched = await watch;
    assert.is(stopped.state, 'stopped');
    assert.is(watched.state, 'stopped');
    assert.equal(frames.map((f) => f.session_state).filter((s, i, all) => s !== all[i - 1]), ['ready', 'stopping', 'stopped']);
    assert.is(watched.transitions.at(-1)?.reason, 'session.stop');
    const stream = watched.containers.find((c) => c.role === 'stream');
    const segmentation = watched.containers.find((c) => c.role === 'segmentation');
    // Stopped mid-stream: some frames flowed, not all of them.
    for (const c of [stream, segmentation]) {
      const n = c?.stats?.frames as number;
      assert.ok(n > 0 && n < 40_000, `expected the ${c?.role} to report 0 < frames < 40000, got ${JSON.stringify(c?.stats)}`);
    }
    await waitFor(`no labelled objects of ${id} left`, noneLeft([id]), 15_000);
  });

  test('session.watch until completed: the final record carries each emulator\'s stats', async () => {
    const { id } = await client!.request<{ id: string }>('session.create', { mode: 'segmented', count: 5000 }, { timeoutMs: 60_000 });
    const final = await client!.request<SessionView>('session.watch', { id }, { timeoutMs: 60_000 });
    assert.is(final.state, 'completed');
    assert.equal(final.containers.map((c) => c.role).sort(), ['probe', 'segmentation', 'stream']);
    for (const c of final.containers) {
      assert.is(c.exit_code, 0, `${c.role} exit code`);
      assert.is(c.stats?.frames, 5000, `${c.role} stats: ${JSON.stringify(c.stats)}`);
      assert.is(c.stats?.lost, 0);
    }
    assert.is((await client!.request<SessionView>('session.get', { id })).state, 'completed');
    await waitFor(`no labelled objects of ${id} left`, noneLeft([id]), 15_000);
  });
}

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { awaitReady, ReadyWatch } from '../../../src/runtime/docker/readiness.js';
import { demuxAll, LineSplitter, OutputDemuxer } from '../../../src/runtime/docker/output.js';
import { findStatsLine } from '../../../src/runtime/emulator-lines.js';
import { EdgeechoError } from '../../../protocol/errors.js';

function frame(stream: 1 | 2, text: string): Buffer {
  const body = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

class FakeSource extends EventEmitter {
  destroyed = false;
  destroy(): void {
    this.destroyed = true;
  }
}

const noEnd = async (): Promise<EdgeechoError> => new EdgeechoError('INTERNAL', 'ended');

test('demuxes frames split at any byte', () => {
  const all = Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n'), frame(1, 'more')]);
  for (let cut = 1; cut < all.length; cut++) {
    const seen: string[] = [];
    const d = new OutputDemuxer((s, data) => seen.push(`${s}:${data}`));
    d.push(all.subarray(0, cut));
    d.push(all.subarray(cut));
    assert.is(seen.filter((x) => x.startsWith('stderr')).join(''), 'stderr:err\n');
    assert.is(seen.filter((x) => x.startsWith('stdout')).map((x) => x.slice(7)).join(''), 'out\nmore');
  }
});

test('lines split across chunks are joined', () => {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  s.push('{"a":');
  s.push('1}\r\nnext');
  s.end();
  assert.equal(lines, ['{"a":1}', 'next']);
});

test('resolves with the ready line even when it arrived before the wait began, and closes the stream', async () => {
  const source = new FakeSource();
  const watch = new ReadyWatch(source);
  source.emit('data', frame(2, 'starting\n'));
  source.emit('data', frame(1, '{"event":"ready","role":"probe","port":7000}\n'));
  const info = await awaitReady(watch, { name: 'probe', timeoutMs: 1000, onEnded: noEnd });
  assert.equal(info, { event: 'ready', role: 'probe', port: 7000 });
  assert.ok(source.destroyed);
});

test('output ending before ready rejects with the stderr tail', async () => {
  const source = new FakeSource();
  const watch = new ReadyWatch(source);
  source.emit('data', frame(2, 'line 1\nfatal: cannot listen\n'));
  source.emit('end');
  const err = await awaitReady(watch, {
    name: 'probe',
    timeoutMs: 1000,
    onEnded: async (tail) => new EdgeechoError('INTERNAL', `exited; last stderr: ${tail.join(' / ')}`),
  }).then(
    () => null,
    (e: EdgeechoError) => e,
  );
  assert.match(err!.message, 'line 1 / fatal: cannot listen');
});

test('timeout rejects with TIMEOUT naming the setting and the stderr tail', async () => {
  const source = new FakeSource();
  const watch = new ReadyWatch(source);
  source.emit('data', frame(2, 'connecting to the probe\n'));
  const err = await awaitReady(watch, { name: 'stream', timeoutMs: 5, onEnded: noEnd }).then(
    () => null,
    (e: EdgeechoError) => e,
  );
  assert.is(err!.code, 'TIMEOUT');
  assert.match(err!.message, 'EDGEECHO_READY_TIMEOUT_MS');
  assert.match(err!.message, 'connecting to the probe');
  assert.ok(source.destroyed);
});

test('abort rejects with CANCELLED', async () => {
  const source = new FakeSource();
  const controller = new AbortController();
  const waiting = awaitReady(new ReadyWatch(source), { name: 'x', timeoutMs: 10_000, signal: controller.signal, onEnded: noEnd });
  controller.abort();
  const err = await waiting.then(
    () => null,
    (e: EdgeechoError) => e,
  );
  assert.is(err!.code, 'CANCELLED');
});

test('stats line: the last stats object in a demuxed log', () => {
  const raw = Buffer.concat([frame(1, '{"event":"ready"}\n'), frame(2, '{"level":"info","msg":"x"}\n'), frame(1, '{"event":"stats","lost":0}\n')]);
  const { stdout, stderr } = demuxAll(raw);
  assert.is(stderr, '{"level":"info","msg":"x"}\n');
  assert.equal(findStatsLine(stdout), { event: 'stats', lost: 0 });
  assert.is(findStatsLine('not json\n'), null);
});

test.run();

/** The local runtime's pure pieces: /proc/<pid>/stat parsing, the log bound, the event ring's catch-up. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseProcStat, readProcStat, isAlive, identityOf, bootId } from '../../../src/runtime/local/proc.js';
import { boundFile, tailLines } from '../../../src/runtime/local/log-files.js';
import { EventHub } from '../../../src/runtime/local/event-hub.js';

test('stat: a command name with spaces and parentheses does not shift the fields', () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  fields[0] = 'S';
  fields[2] = '4242'; // field 5: pgrp
  fields[11] = '70'; // field 14: utime
  fields[12] = '30'; // field 15: stime
  fields[16] = '10'; // field 19: nice
  fields[19] = '987654'; // field 22: starttime
  const stat = parseProcStat(`4242 (node (x) y) ${fields.join(' ')}`);
  assert.equal(stat, { pid: 4242, state: 'S', pgrp: 4242, cpuTicks: 100, niceness: 10, startTime: 987654 });
  assert.throws(() => parseProcStat('garbage'), /expected "pid \(comm\) state/);
});

test('identity: this process is alive; the same pid with another start time (a reused pid) is not', () => {
  const me = identityOf(process.pid)!;
  assert.is(me.startTime, readProcStat(process.pid)!.startTime);
  assert.ok(isAlive(me));
  assert.not.ok(isAlive({ ...me, startTime: me.startTime + 1 }));
  assert.not.ok(isAlive({ ...me, bootId: 'another-boot' }));
  assert.is(bootId(), readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
});

test('log bound: a file past the bound keeps its last half, from a line start, behind a marker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-log-bound-'));
  try {
    const file = join(dir, 'stderr');
    const lines = Array.from({ length: 2000 }, (_, i) => `line ${i}`);
    writeFileSync(file, lines.join('\n') + '\n');
    assert.not.ok(boundFile(file, 1024 * 1024), 'under the bound: untouched');
    assert.ok(boundFile(file, 4096));
    const text = readFileSync(file, 'utf8');
    assert.ok(text.length <= 4096, `${text.length} bytes`);
    assert.match(text, /^\[edgeecho: \d+ earlier bytes cut at the log bound of 4096\]\nline \d+\n/);
    assert.ok(text.endsWith('line 1999\n'));
    assert.is(tailLines(file, 2), 'line 1998\nline 1999\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('events: a subscriber from `since` gets the ring from then on, then live events; abort ends it', async () => {
  const hub = new EventHub(3);
  for (let i = 0; i < 5; i++) hub.publish({ type: 'container', action: 'die', id: `c${i}` });
  const controller = new AbortController();
  const seen: string[] = [];
  const done = (async () => {
    for await (const e of hub.follow({ since: 0, signal: controller.signal })) {
      seen.push(e.id);
      if (seen.length === 4) controller.abort();
    }
  })();
  hub.publish({ type: 'container', action: 'die', id: 'live' });
  await done;
  assert.equal(seen, ['c2', 'c3', 'c4', 'live'], 'the ring keeps the last 3');
  const none: string[] = [];
  const late = new AbortController();
  const following = (async () => {
    for await (const e of hub.follow({ signal: late.signal })) none.push(e.id);
  })();
  late.abort();
  await following;
  assert.equal(none, [], 'without since, nothing from before');
});

test.run();

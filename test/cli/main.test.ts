import { PassThrough } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CliIo, CommandModule } from '../../src/cli/args.js';
import { main, type CommandEntry } from '../../src/cli/main.js';
import { runCli } from '../support/run-cli.js';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSessionStore, SESSION_DB_FILE } from '../../src/sessions/sqlite-store.js';

function memoryIo(): CliIo & { out(): string; err(): string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  return { stdin: new PassThrough(), stdout, stderr, env: {}, out: () => out, err: () => err };
}

const calls: string[][] = [];
const fake = (name: string, mod: Partial<CommandModule> = {}): CommandEntry => ({
  name,
  summary: `the ${name} command`,
  load: async () => ({
    usage: `usage: edgeecho ${name}\n`,
    run: async (argv) => {
      calls.push([name, ...argv]);
      return 0;
    },
    ...mod,
  }),
});
const commands = [fake('cat'), fake('session create'), fake('session ls'), fake('daemon', { usage: undefined, run: async () => undefined })];

test('dispatches to the longest matching command with the rest of argv', async () => {
  calls.length = 0;
  const io = memoryIo();
  assert.is(await main(['session', 'ls', '--json'], io, commands), 0);
  assert.is(await main(['cat', 'x'], io, commands), 0);
  assert.equal(calls, [['session ls', '--json'], ['cat', 'x']]);
});

test('--help, -h and `help <command>` print the usage without running the command', async () => {
  calls.length = 0;
  for (const argv of [['cat', '--help'], ['cat', '-h'], ['help', 'cat'], ['session', 'create', '--help']]) {
    const io = memoryIo();
    assert.is(await main(argv, io, commands), 0);
    assert.match(io.out(), /^usage: edgeecho (cat|session create)\n/);
  }
  const io = memoryIo();
  assert.is(await main(['cat', '--', '--help'], io, commands), 0, 'after -- it is an argument');
  assert.equal(calls, [['cat', '--', '--help']]);
});

test('top-level help lists every command; no command at all is a usage error', async () => {
  const help = memoryIo();
  assert.is(await main(['--help'], help, commands), 0);
  for (const c of commands) assert.ok(help.out().includes(c.name), c.name);
  const none = memoryIo();
  assert.is(await main([], none, commands), 2);
  assert.match(none.err(), /usage: edgeecho <command>/);
});

test('unknown command -> usage on stderr, exit 2; a group word alone lists its commands', async () => {
  const io = memoryIo();
  assert.is(await main(['frobnicate'], io, commands), 2);
  assert.match(io.err(), /unknown command "frobnicate"/);
  const group = memoryIo();
  assert.is(await main(['session'], group, commands), 2);
  assert.match(group.err(), /usage: edgeecho session <create\|ls>/);
});

test('a command that keeps running resolves undefined (the daemon)', async () => {
  assert.is(await main(['daemon'], memoryIo(), commands), undefined);
});

test('a missing command module says so', async () => {
  const io = memoryIo();
  const missing: CommandEntry = { name: 'later', summary: '', load: () => Promise.reject(new Error('this build has no src/cli/later.ts')) };
  assert.is(await main(['later'], io, [missing]), 2);
  assert.match(io.err(), /edgeecho later: not available: this build has no src\/cli\/later\.ts/);
});

test('bin/edgeecho.js: config prints the settings table and the data dir\'s instance id (none before the first start); unknown command exits 2', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgeecho-config-'));
  try {
    const config = await runCli(['config'], '', { EDGEECHO_DATA_DIR: dataDir });
    assert.is(config.code, 0, config.stderr);
    assert.match(config.stdout, /\| `EDGEECHO_PORT` \| `--port` \| `7411` \|/);
    assert.match(config.stdout, `instance: none yet (the daemon makes one at its first start on ${dataDir})`);
    assert.not.ok(existsSync(join(dataDir, SESSION_DB_FILE)), 'config must not create the records');
    const store = openSessionStore(join(dataDir, SESSION_DB_FILE));
    const id = store.instanceId();
    store.close();
    const again = await runCli(['config', '--data-dir', dataDir]);
    assert.is(again.code, 0, again.stderr);
    assert.match(again.stdout, `instance: ${id} (${join(dataDir, SESSION_DB_FILE)})`);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  const bad = await runCli(['frobnicate']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /unknown command/);
});

test.run();

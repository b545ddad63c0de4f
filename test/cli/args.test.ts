import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CONNECTION_FLAGS, connectionOptions, parseFlags, UsageError } from '../../src/cli/args.js';

const parse = (argv: string[]) => parseFlags(argv, { ...CONNECTION_FLAGS, hex: { type: 'bool', help: '' }, max: { type: 'bytes', help: '' } });

test('flags: --x v, --x=v, --no-bool, -- ends flags, positionals kept', () => {
  const { values, positionals } = parse(['--port', '7500', '--host=10.0.0.2', '--no-hex', '--max', '8k', 'pos', '--', '--port']);
  assert.equal(values, { port: 7500, host: '10.0.0.2', hex: false, max: 8192 });
  assert.equal(positionals, ['pos', '--port']);
});

test('flags: unknown, missing value and bad numbers are usage errors naming the flag', () => {
  assert.throws(() => parse(['--prot', '1']), (e: unknown) => e instanceof UsageError && /unknown flag --prot/.test(e.message));
  assert.throws(() => parse(['--port']), (e: unknown) => e instanceof UsageError && /--port: expects a value/.test(e.message));
  assert.throws(() => parse(['--port', '70000']), (e: unknown) => e instanceof UsageError && /1\.\.65535, got "70000"/.test(e.message));
});

test('connection: env defaults, flags win, explicit --host/--port beat EDGEECHO_SOCKET, --socket beats all', () => {
  assert.equal(connectionOptions({}, {}), { host: '127.0.0.1', port: 7411 });
  assert.equal(connectionOptions({}, { EDGEECHO_HOST: 'h', EDGEECHO_PORT: '7500' }), { host: 'h', port: 7500 });
  assert.equal(connectionOptions({}, { EDGEECHO_SOCKET: '/run/e.sock', EDGEECHO_PORT: '7500' }), { path: '/run/e.sock' });
  assert.equal(connectionOptions({ port: 7600 }, { EDGEECHO_SOCKET: '/run/e.sock' }), { host: '127.0.0.1', port: 7600 });
  assert.equal(connectionOptions({ socket: '/tmp/s', port: 7600 }, {}), { path: '/tmp/s' });
  assert.throws(() => connectionOptions({}, { EDGEECHO_PORT: '0' }), /EDGEECHO_PORT: expected a port in 1\.\.65535 to connect to, got "0"/);
});

test('connection: token read (and trimmed) from --token-file or EDGEECHO_TOKEN_FILE; unreadable file named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-args-'));
  try {
    const file = join(dir, 'token');
    writeFileSync(file, '  abc\n');
    assert.is(connectionOptions({ 'token-file': file }, {}).token, 'abc');
    assert.is(connectionOptions({}, { EDGEECHO_TOKEN_FILE: file }).token, 'abc');
    assert.throws(() => connectionOptions({}, { EDGEECHO_TOKEN_FILE: join(dir, 'nope') }), /EDGEECHO_TOKEN_FILE: cannot read token file .*ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('flags: names of Object.prototype members are unknown flags, not values', () => {
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    assert.throws(() => parse([`--${name}`, 'x']), (e: unknown) => e instanceof UsageError && /unknown flag/.test(e.message), name);
    assert.throws(() => parse([`--no-${name}`]), (e: unknown) => e instanceof UsageError && /unknown flag/.test(e.message), `no-${name}`);
  }
});

test.run();

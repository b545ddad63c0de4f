/** The production bundle (scripts/bundle.ts): it runs the CLI, and the transports it omits fail loudly if called. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { bundle, OMITTED, omitPlugin } from '../../scripts/bundle.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function node(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: root, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('the bundle runs the CLI: version from package.json, the settings table, no ssh2 or gRPC inside', async () => {
  // In dist/ like the real one, since the bundle finds package.json and emulators/ one level up.
  const outfile = join(root, 'dist', `edgeecho-test-${process.pid}.mjs`);
  try {
    await bundle(outfile);
    const version = await node([outfile, '--version']);
    assert.is(version.code, 0, version.stderr);
    assert.is(version.stdout.trim(), (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version);
    const config = await node([outfile, 'config']);
    assert.is(config.code, 0, config.stderr);
    assert.match(config.stdout, /`EDGEECHO_DOCKER_SOCKET`/);
    const text = readFileSync(outfile, 'utf8');
    assert.not.match(text, /node_modules\/ssh2\//);
    assert.not.match(text, /node_modules\/@grpc\//);
    assert.match(text, /edgeecho's bundle omits ssh2/);
  } finally {
    rmSync(outfile, { force: true });
  }
});

test('an omitted package loads, and throws naming itself and the reason when used', async () => {
  const outfile = join(root, 'dist', `omitted-test-${process.pid}.cjs`);
  try {
    await build({
      stdin: { contents: `const { Client } = require('ssh2'); require('@grpc/grpc-js'); console.log('loaded'); new Client();`, resolveDir: root, loader: 'js' },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      outfile,
      plugins: [omitPlugin],
      logLevel: 'silent',
    });
    const run = await node([outfile]);
    assert.is(run.stdout.trim(), 'loaded');
    assert.is.not(run.code, 0);
    assert.ok(run.stderr.includes(`edgeecho's bundle omits ssh2: ${OMITTED.ssh2}`), run.stderr);
  } finally {
    rmSync(outfile, { force: true });
  }
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const unitsDir = join(root, 'systemd');
const CI = process.env.EDGEECHO_REQUIRE_DOCKER === '1';
const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p)) ?? null;

if (!ANALYZE) {
  if (CI) throw new Error('EDGEECHO_REQUIRE_DOCKER=1 (CI mode) but systemd-analyze is not installed: the unit files cannot be verified');
  console.warn('\n!!! SKIPPED systemd unit verification: systemd-analyze not found (CI mode fails instead) !!!\n');
}

const read = (name: string): string => readFileSync(join(unitsDir, name), 'utf8');

function analyze(dir: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(ANALYZE!, ['verify', '--man=no', join(dir, 'edgeecho.socket'), join(dir, 'edgeecho.service')], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

/** verify checks that ExecStart's binary exists: point it at this machine's node. */
function copyUnits(transform: (text: string) => string = (t) => t): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-units-'));
  for (const name of ['edgeecho.service', 'edgeecho.socket']) {
    writeFileSync(join(dir, name), transform(read(name).replaceAll('/usr/bin/node', process.execPath)));
  }
  return dir;
}

/** Lines about our units: unknown keys, bad values, missing binaries (verify exits 0 for some of these). */
const complaints = (output: string): string[] => output.split('\n').filter((l) => /edgeecho\.(service|socket)/.test(l));

test('systemd-analyze verify accepts edgeecho.service and edgeecho.socket without a complaint', async () => {
  if (!ANALYZE) return;
  const dir = copyUnits();
  try {
    const { code, output } = await analyze(dir);
    assert.equal(complaints(output), [], output);
    assert.is(code, 0, output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the verification catches a broken unit (unknown key, missing binary)', async () => {
  if (!ANALYZE) return;
  const dir = copyUnits((t) => t.replace('LockPersonality=yes', 'LockPersonality=yes\nNoSuchDirective=1').replace(process.execPath, '/nonexistent/node'));
  try {
    const { code, output } = await analyze(dir);
    assert.ok(complaints(output).some((l) => l.includes('NoSuchDirective')), output);
    assert.is.not(code, 0, output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const directives = (text: string): Map<string, string[]> => {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) map.set(m[1]!, [...(map.get(m[1]!) ?? []), m[2]!]);
  }
  return map;
};

test('the service runs the production bundle with node, notifies readiness and keeps V8 runnable', () => {
  const service = directives(read('edgeecho.service'));
  const exec = service.get('ExecStart')![0]!;
  assert.match(exec, /^\/usr\/bin\/node \/opt\/edgeecho\/dist\/edgeecho\.mjs daemon$/);
  assert.not.match(exec, /tsx/);
  // dist/edgeecho.mjs is what `npm run build` (scripts/bundle.ts) makes of src/cli/main.ts.
  assert.match(readFileSync(join(root, 'scripts/bundle.ts'), 'utf8'), /join\(root, 'dist', 'edgeecho\.mjs'\)/);
  assert.match(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts.build, /scripts\/bundle\.ts/);
  assert.ok(existsSync(join(root, 'src/cli/main.ts')));
  assert.equal(service.get('Type'), ['notify']);
  assert.equal(service.get('NotifyAccess'), ['all'], 'systemd-notify runs as a child: NotifyAccess=all');
  assert.ok(service.has('WatchdogSec'));
  assert.equal(service.get('Restart'), ['on-failure']);
  assert.equal(service.get('RestartPreventExitStatus'), ['2'], 'bad configuration (exit 2) is not retried');
  assert.equal(service.get('StateDirectory'), ['edgeecho']);
  assert.equal(service.get('RuntimeDirectory'), ['edgeecho']);
  assert.equal(service.get('EnvironmentFile'), ['-/etc/edgeecho/edgeecho.env']);
  assert.equal(service.get('SupplementaryGroups'), ['docker']);
  assert.equal(service.get('RestrictAddressFamilies')![0]!.split(' ').slice(0, 3), ['AF_UNIX', 'AF_INET', 'AF_INET6']);
  for (const key of ['NoNewPrivileges', 'ProtectHome', 'PrivateTmp', 'ProtectKernelTunables', 'ProtectKernelModules', 'LockPersonality']) {
    assert.equal(service.get(key), ['yes'], key);
  }
  assert.equal(service.get('ProtectSystem'), ['strict']);
  assert.not.ok(service.has('MemoryDenyWriteExecute'), 'MemoryDenyWriteExecute breaks V8');
  assert.not.ok(service.has('ProcSubset'), 'ProcSubset=pid hides /proc/stat and /proc/meminfo from the resource tracker');
});

test('the socket unit listens on loopback TCP and the runtime directory socket', () => {
  const socket = directives(read('edgeecho.socket'));
  assert.equal(socket.get('ListenStream'), ['127.0.0.1:7411', '/run/edgeecho/edgeecho.sock']);
  assert.equal(socket.get('SocketMode'), ['0660']);
  const env = read('edgeecho.env.example');
  for (const name of ['EDGEECHO_TOKEN_FILE', 'EDGEECHO_TLS_CERT', 'EDGEECHO_TLS_KEY', 'EDGEECHO_HOST']) assert.ok(env.includes(name), name);
});

test.run();

/**
 * The checkout as README's "Running under systemd" installs it in /opt/edgeecho, staged on the host and bound
 * read-only into the systemd container: this working tree's files (tracked and untracked, not ignored) with its
 * installed node_modules copied, then the README's own build step run in the copy (`npm run build && npm prune
 * --omit=dev`). The copied node_modules stands in for `npm ci`: the container has no npm and no registry, and the
 * lockfile it would install from is the one this tree was installed from. One stage per process.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOk } from './command.js';
import { readmeSystemdSteps } from './readme-steps.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DEFAULT_BUILD_TIMEOUT_MS = 180_000;

let staging: Promise<string> | null = null;
let stageRoot: string | null = null;

/** The staged /opt/edgeecho on the host; removed when the process exits. */
export function stagedCheckout(): Promise<string> {
  staging ??= stage();
  return staging;
}

async function stage(): Promise<string> {
  stageRoot = mkdtempSync(join(tmpdir(), 'edgeecho-systemd-stage-'));
  process.once('exit', () => stageRoot && rmSync(stageRoot, { recursive: true, force: true }));
  const dir = join(stageRoot, 'edgeecho');
  const files = (await runOk('git', ['-C', ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'])).split('\0');
  for (const file of files) {
    // node_modules may be a symlink (a worktree sharing another checkout's), which the ignore rule does not match.
    if (!file || file === 'node_modules' || file.startsWith('node_modules/') || !existsSync(join(ROOT, file))) continue;
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    cpSync(join(ROOT, file), join(dir, file), { force: true, errorOnExist: false, verbatimSymlinks: true });
  }
  cpSync(realpathSync(join(ROOT, 'node_modules')), join(dir, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  const started = Date.now();
  await runOk('bash', ['-c', readmeSystemdSteps().build], { cwd: dir, timeoutMs: DEFAULT_BUILD_TIMEOUT_MS, env: { ...process.env, npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false' } });
  console.log(`[systemd harness] staged and built the checkout in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return dir;
}

/**
 * A real systemd as PID 1 in a container on the shared engine, with edgeecho installed the way README's
 * "Running under systemd" says: the staged checkout (staged-checkout.ts) at /opt/edgeecho, then the README's own
 * sysusers, units and env file lines. The host's docker.sock is bound in (with a `docker` group of its gid), so
 * the daemon inside creates real sessions on this engine; each box appends EDGEECHO_OBJECT_LABELS to the env file
 * and `remove()` deletes the box and every object carrying its io.edgeecho.test label, also when a test failed
 * (and, as a last resort, from a process exit hook).
 *
 * Why these run flags: --privileged is refused on these machines, so ALL capabilities but SYS_RESOURCE; systemd
 * needs seccomp and AppArmor out of the way to set up the units' sandboxes (namespaces, mounts, filters), tmpfs on
 * /run and /run/lock, and the cgroup tree writable to create the units' cgroups.
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import type Docker from 'dockerode';
import type { Test } from 'uvu';
import { removeLabelled, runLabel, TEST_LABEL, waitFor } from '../../support/daemon-process.js';
import { run, runOk, type CommandResult } from './command.js';
import { readmeSystemdSteps } from './readme-steps.js';
import { stagedCheckout } from './staged-checkout.js';
import { imageUnavailable, systemdImage } from './systemd-image.js';
import { dockerOrSkip, REQUIRE_DOCKER } from '../support/docker.js';

export const ENV_FILE = '/etc/edgeecho/edgeecho.env';
export const DEFAULT_BOOT_TIMEOUT_MS = 60_000;
const DOCKER_SOCKET = process.env.EDGEECHO_DOCKER_SOCKET ?? '/var/run/docker.sock';
const ROLES = ['probe', 'stream', 'segmentation'] as const;
const emulatorImage = (label: string, role: string): string => `edgeecho-test/${role}:${label}`;

export interface JournalEntry {
  pid: number;
  /** The daemon's pino line when MESSAGE is JSON, else { msg: MESSAGE }. */
  line: { msg?: string; [key: string]: unknown };
}

export interface SystemdBox {
  name: string;
  /** io.edgeecho.test value of the box and of every session its daemon makes. */
  label: string;
  /** Where the checkout is installed (README: /opt/edgeecho). */
  dir: string;
  /** `bash -c script` inside the box as root; never throws on a non-zero exit. */
  exec(script: string, timeoutMs?: number): Promise<CommandResult>;
  /** Like exec, but a non-zero exit throws with the script's stderr. */
  sh(script: string, timeoutMs?: number): Promise<string>;
  /** The installed CLI (`node <dir>/dist/edgeecho.mjs ...`) as root inside the box. */
  edgeecho(args: string[], timeoutMs?: number): Promise<CommandResult>;
  /** `systemctl show` properties of a unit. */
  show(unit: string, props: string[]): Promise<Record<string, string>>;
  /** Journal entries of a unit, oldest first. */
  journal(unit: string): Promise<JournalEntry[]>;
  /** Sets (replacing earlier values) lines of /etc/edgeecho/edgeecho.env. */
  setEnv(values: Record<string, string>): Promise<void>;
  /** Stops the units, removes the box and every object labelled for it. Safe to call twice. */
  remove(): Promise<void>;
}

export interface BoxOptions {
  /** Names the box and its label: edgeecho-test-systemd-<area>-<pid>. */
  area: string;
  /** Extra lines for the env file, after the README's copy of edgeecho.env.example. */
  env?: Record<string, string>;
}

/** The engine when boxes can run here; null (skipped, loudly) without an engine or a way to get the image, unless CI. */
export async function dockerForBoxesOrSkip(suite: string): Promise<Docker | null> {
  const docker = await dockerOrSkip(suite);
  if (!docker) return null;
  const reason = await imageUnavailable();
  if (!reason) return docker;
  if (REQUIRE_DOCKER) throw new Error(`EDGEECHO_REQUIRE_DOCKER=1 but ${suite} cannot run: ${reason}`);
  console.warn(`\n!!! SKIPPED ${suite}: ${reason} (set EDGEECHO_REQUIRE_DOCKER=1 to fail instead) !!!\n`);
  return null;
}

export async function startSystemdBox(docker: Docker, options: BoxOptions): Promise<SystemdBox> {
  const [image, stage] = await Promise.all([systemdImage(), stagedCheckout()]);
  const steps = readmeSystemdSteps();
  const label = runLabel(`systemd-${options.area}`);
  const name = `edgeecho-test-${label}`;
  const dockerGid = statSync(DOCKER_SOCKET).gid;
  if (dockerGid === 0) throw new Error(`${DOCKER_SOCKET} belongs to group root: the box's docker group needs the socket's own group`);

  const exitHook = (): void => {
    // uvu can end the process before an async cleanup ran: remove what this box labelled, synchronously.
    try {
      const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=${TEST_LABEL}=${label}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
      if (ids.length) execFileSync('docker', ['rm', '-f', ...ids], { stdio: 'ignore' });
      const nets = execFileSync('docker', ['network', 'ls', '-q', '--filter', `label=${TEST_LABEL}=${label}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
      if (nets.length) execFileSync('docker', ['network', 'rm', ...nets], { stdio: 'ignore' });
      execFileSync('docker', ['rmi', ...ROLES.map((role) => emulatorImage(label, role))], { stdio: 'ignore' });
    } catch {
      // Best effort at exit; .ci/run's leak check reports what is left.
    }
  };
  process.once('exit', exitHook);

  const exec = (script: string, timeoutMs?: number): Promise<CommandResult> => run('docker', ['exec', name, 'bash', '-c', script], { timeoutMs: timeoutMs ?? 60_000 });
  const sh = async (script: string, timeoutMs?: number): Promise<string> => {
    const r = await exec(script, timeoutMs);
    if (r.code !== 0) throw new Error(`in ${name}: ${script.slice(0, 200)}: exit ${r.code}\n${(r.stderr || r.stdout).slice(-3000)}`);
    return r.stdout;
  };
  let removed = false;
  const box: SystemdBox = {
    name,
    label,
    dir: steps.dir,
    exec,
    sh,
    edgeecho: (args, timeoutMs) => run('docker', ['exec', name, 'node', `${steps.dir}/dist/edgeecho.mjs`, ...args], { timeoutMs: timeoutMs ?? 60_000 }),
    async show(unit, props) {
      const out = await sh(`systemctl show ${props.map((p) => `-p ${p}`).join(' ')} ${unit}`);
      return Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    },
    async journal(unit) {
      const out = await sh(`journalctl --no-pager -o json -u ${unit}`);
      return out.split('\n').filter(Boolean).map((text) => {
        const entry = JSON.parse(text) as { _PID?: string; MESSAGE?: string | number[] };
        const message = Array.isArray(entry.MESSAGE) ? Buffer.from(entry.MESSAGE).toString('utf8') : (entry.MESSAGE ?? '');
        let line: JournalEntry['line'] = { msg: message };
        try {
          const parsed: unknown = JSON.parse(message);
          if (parsed && typeof parsed === 'object') line = parsed as JournalEntry['line'];
        } catch {
          // Not one of the daemon's JSON lines: systemd's own, or stderr text.
        }
        return { pid: Number(entry._PID ?? 0), line };
      });
    },
    async setEnv(values) {
      const edits = Object.entries(values).map(([k, v]) => `sed -i '/^${k}=/d' ${ENV_FILE} && echo '${k}=${v}' >> ${ENV_FILE}`);
      await sh(edits.join(' && '));
    },
    async remove() {
      if (removed) return;
      removed = true;
      await exec('systemctl stop edgeecho.socket edgeecho.service', 45_000).catch(() => undefined);
      await run('docker', ['rm', '-f', name]).catch(() => undefined);
      await removeLabelled(docker, label);
      for (const role of ROLES) await docker.getImage(emulatorImage(label, role)).remove().catch(() => undefined);
      process.off('exit', exitHook);
    },
  };

  try {
    await runOk('docker', [
      'run', '-d', '--name', name, '--hostname', `edgeecho-${options.area}`,
      '--label', `${TEST_LABEL}=${label}`,
      '--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE',
      '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined',
      '--tmpfs', '/run', '--tmpfs', '/run/lock',
      '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw',
      '-v', `${DOCKER_SOCKET}:/var/run/docker.sock`,
      '-v', `${stage}:${steps.dir}:ro`,
      // systemd's own request to halt; the default SIGTERM would make PID 1 re-execute itself.
      '--stop-signal', 'SIGRTMIN+3',
      image, '/lib/systemd/systemd',
    ]);
    await waitFor(`systemd in ${name} to finish booting`, async () => {
      const state = (await exec('systemctl is-system-running')).stdout.trim();
      return state === 'running' || state === 'degraded' ? state : undefined;
    }, DEFAULT_BOOT_TIMEOUT_MS, 250);
    await sh(`groupadd -g ${dockerGid} docker`);
    // The README's lines, verbatim, in the checkout's directory.
    await sh(`set -e; cd ${steps.dir}; ${steps.install.join('\n')}`);
    await box.setEnv({
      EDGEECHO_OBJECT_LABELS: `${TEST_LABEL}=${label}`,
      // The engine is shared: never sweep another daemon's or test's objects as orphans.
      EDGEECHO_ORPHAN_GRACE_S: '86400',
      EDGEECHO_PLAIN_GRACE_MS: '1000',
      // Emulator images of its own, so the daemon builds them at its first start under the unit's UMask and
      // sandbox, as on a fresh install, instead of finding the ones other tests built.
      ...Object.fromEntries(ROLES.map((role) => [`EDGEECHO_IMAGE_${role.toUpperCase()}`, emulatorImage(label, role)])),
      ...options.env,
    });
  } catch (err) {
    await box.remove();
    throw err;
  }
  return box;
}

/**
 * One box for a test file, started by the first test that asks and removed after the last. Before each test the
 * service's start counter is reset: the tests restart it more often than StartLimitBurst allows in a minute.
 */
export function boxPerFile(suite: Test, docker: Docker, options: BoxOptions): () => Promise<SystemdBox> {
  let promise: Promise<SystemdBox> | null = null;
  suite.before.each(async () => {
    if (promise) await (await promise).sh('systemctl reset-failed edgeecho.service');
  });
  suite.after(async () => {
    if (promise) await (await promise.catch(() => null))?.remove();
  });
  return () => (promise ??= startSystemdBox(docker, options));
}

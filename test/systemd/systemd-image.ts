/**
 * The image the systemd tests boot: a Debian bookworm root filesystem with systemd (debootstrap, minbase) plus this
 * host's node binary, `docker import`ed. Built once per engine: the tag carries a hash of the recipe and the node
 * binary, so a later run (or another test file of this run) on the same engine finds it and skips the minute of
 * debootstrap. No Dockerfile: the engine here cannot pull base images, while Debian's packages are reachable.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, runOk } from './command.js';

export const IMAGE_REPO = 'edgeecho-test/systemd';
export const IMAGE_LABEL = 'io.edgeecho.test-image';
const SUITE = 'bookworm';
// openssl: edgeecho.env.example creates the token file with `openssl rand`.
const DEBOOTSTRAP_ARGS = ['--variant=minbase', '--include=systemd,systemd-sysv,dbus,openssl'];
/** Bump when the recipe changes in a way the hash cannot see. */
const RECIPE_VERSION = 1;
export const DEFAULT_DEBOOTSTRAP_TIMEOUT_MS = 300_000;

export const DEBOOTSTRAP = ['/usr/sbin/debootstrap', '/sbin/debootstrap', '/usr/bin/debootstrap'].find((p) => existsSync(p)) ?? null;

let building: Promise<string> | null = null;

/** The image tag, built if this engine does not have it yet; one build per process however many files ask. */
export function systemdImage(): Promise<string> {
  building ??= ensureImage();
  return building;
}

/** Why the image can be neither found nor built here, or null when it can be had. */
export async function imageUnavailable(): Promise<string | null> {
  const tag = await imageTag();
  if (await imagePresent(tag)) return null;
  if (!DEBOOTSTRAP) return `${tag} is not on this engine and debootstrap is not installed to build it (apt-get install debootstrap; .ci/run does)`;
  if (process.getuid?.() !== 0) return `${tag} is not on this engine and building it needs root (debootstrap)`;
  return null;
}

const imageTag = async (): Promise<string> => `${IMAGE_REPO}:${await recipeHash()}`;
const imagePresent = async (tag: string): Promise<boolean> => (await run('docker', ['image', 'inspect', '--format', '{{.Id}}', tag])).code === 0;

async function ensureImage(): Promise<string> {
  const tag = await imageTag();
  if (await imagePresent(tag)) return tag;
  const unavailable = await imageUnavailable();
  if (unavailable || !DEBOOTSTRAP) throw new Error(unavailable ?? 'debootstrap is not installed');
  const work = mkdtempSync(join(tmpdir(), 'edgeecho-systemd-rootfs-'));
  const rootfs = join(work, 'rootfs');
  try {
    const started = Date.now();
    await runOk(DEBOOTSTRAP, [...DEBOOTSTRAP_ARGS, SUITE, rootfs, debianMirror()], { timeoutMs: DEFAULT_DEBOOTSTRAP_TIMEOUT_MS });
    copyFileSync(process.execPath, join(rootfs, 'usr/bin/node'));
    for (const dir of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      for (const name of readdirSync(join(rootfs, dir))) if (name !== 'partial' && name !== 'lock') rmSync(join(rootfs, dir, name), { recursive: true, force: true });
    }
    await runOk('bash', ['-c', `set -o pipefail; tar -C "$1" -c . | docker import --change "LABEL ${IMAGE_LABEL}=systemd" - "$2"`, 'import', rootfs, tag], { timeoutMs: 120_000 });
    console.log(`[systemd harness] built ${tag} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return tag;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

let hashing: Promise<string> | null = null;

function recipeHash(): Promise<string> {
  hashing ??= hashRecipe();
  return hashing;
}

async function hashRecipe(): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify({ RECIPE_VERSION, SUITE, DEBOOTSTRAP_ARGS }));
  // The node binary goes into the image: a node upgrade must make a new image.
  for await (const chunk of createReadStream(process.execPath)) hash.update(chunk as Buffer);
  return hash.digest('hex').slice(0, 16);
}

/** The Debian mirror this host's apt uses (the only package source reachable here), or EDGEECHO_TEST_DEBIAN_MIRROR. */
export function debianMirror(): string {
  const override = process.env.EDGEECHO_TEST_DEBIAN_MIRROR;
  if (override) return override;
  const sources: string[] = [];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) for (const name of readdirSync(dir)) if (/\.(sources|list)$/.test(name)) sources.push(readFileSync(join(dir, name), 'utf8'));
  if (existsSync('/etc/apt/sources.list')) sources.push(readFileSync('/etc/apt/sources.list', 'utf8'));
  for (const text of sources) {
    const uri = /^URIs:\s*(\S+\/debian)\/?\s*$/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+\S+/m.exec(text);
    if (uri) return uri[1]!;
  }
  throw new Error('no Debian mirror found in /etc/apt/sources.list{,.d}: set EDGEECHO_TEST_DEBIAN_MIRROR');
}

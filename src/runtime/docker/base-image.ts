/**
 * The base image the emulator images build FROM. An air-gapped edge node (and this CI) cannot pull
 * `node:20-bookworm-slim`, so when the configured base is absent and cannot be pulled, a base is made from the
 * host's own Node runtime: the node binary plus the shared libraries `ldd` lists, imported as an image.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, mkdir, writeFile, rm, realpath } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { LABEL_MANAGED } from '../driver.js';

const run = promisify(execFile);

export const HOST_NODE_BASE_REPO = 'edgeecho/node-base';
export const DEFAULT_PULL_TIMEOUT_MS = 20_000;

export type BaseSource = 'present' | 'pulled' | 'host-node';

export interface BaseImage {
  image: string;
  source: BaseSource;
}

export async function imageExists(docker: Docker, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

async function tryPull(docker: Docker, ref: string, timeoutMs: number, log: Logger): Promise<boolean> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const stream = (await docker.pull(ref, { abortSignal: signal })) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve()));
    });
    return imageExists(docker, ref);
  } catch (err) {
    log.info({ image: ref, err: (err as Error).message }, 'base image cannot be pulled; building one from the host node');
    return false;
  }
}

/** Files the host node needs: the binary and each library ldd resolves, including the loader. */
export async function hostNodeFiles(nodePath = process.execPath): Promise<string[]> {
  const binary = await realpath(nodePath);
  const { stdout } = await run('ldd', [binary]);
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) libs.push(m[1]!);
    else if (/not found/.test(line)) throw new Error(`ldd ${binary}: ${line.trim()}`);
  }
  return [binary, ...libs];
}

/**
 * Builds `edgeecho/node-base:<node version>` from the host runtime. The rootfs holds only node, its libraries,
 * /etc/passwd and /etc/group with an unprivileged `node` user (uid 1000), and /tmp.
 */
export async function buildHostNodeBase(docker: Docker, log: Logger): Promise<string> {
  const tag = process.version.replace(/^v/, '');
  const image = `${HOST_NODE_BASE_REPO}:${tag}`;
  if (await imageExists(docker, image)) return image;
  const files = await hostNodeFiles();
  const staging = await mkdtemp(join(tmpdir(), 'edgeecho-base-'));
  try {
    await mkdir(join(staging, 'etc'));
    await mkdir(join(staging, 'tmp'));
    await mkdir(join(staging, 'app'));
    await writeFile(join(staging, 'etc', 'passwd'), 'root:x:0:0:root:/root:/sbin/nologin\nnode:x:1000:1000:node:/app:/sbin/nologin\n');
    await writeFile(join(staging, 'etc', 'group'), 'root:x:0:\nnode:x:1000:\n');
    // Explicit modes, not the process umask: under the unit's UMask=0027 uid 1000 could not enter /app or write /tmp.
    for (const [path, mode] of [['etc', 0o755], ['etc/passwd', 0o644], ['etc/group', 0o644], ['tmp', 0o1777], ['app', 0o755]] as const) {
      await chmod(join(staging, path), mode);
    }
    // -h stores what symlinks point at, so /lib64/ld-linux and versioned library links arrive as real files.
    const tar = spawn('tar', ['-c', '-h', '--numeric-owner', '--owner=0', '--group=0', '-C', '/', ...files.map((f) => f.slice(1)), '-C', staging, 'etc', 'tmp', 'app'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    tar.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const tarDone = new Promise<void>((resolve, reject) => {
      tar.on('error', reject);
      tar.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar exited ${code}: ${stderr.trim()}`))));
    });
    const nodeDir = files[0]!.slice(0, files[0]!.lastIndexOf('/'));
    const changes = [
      `ENV PATH=${nodeDir}:/usr/local/bin:/usr/bin:/bin`,
      `LABEL ${LABEL_MANAGED.replace('managed', 'base')}=host-node`,
      `LABEL io.edgeecho.node-version=${process.version}`,
      'WORKDIR /app',
    ];
    const stream = (await docker.importImage(tar.stdout, { repo: HOST_NODE_BASE_REPO, tag, changes } as never)) as unknown as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve()));
    });
    await tarDone;
    if (!(await imageExists(docker, image))) throw new Error(`import of ${image} reported success but the image is absent`);
    log.info({ image, files: files.length }, 'built base image from the host node runtime');
    return image;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** The configured base when present or pullable, else one built from the host node. Says which it used. */
export async function ensureBaseImage(
  docker: Docker,
  options: { baseImage: string; log: Logger; pullTimeoutMs?: number },
): Promise<BaseImage> {
  const { baseImage, log } = options;
  if (await imageExists(docker, baseImage)) return { image: baseImage, source: 'present' };
  if (await tryPull(docker, baseImage, options.pullTimeoutMs ?? DEFAULT_PULL_TIMEOUT_MS, log)) return { image: baseImage, source: 'pulled' };
  return { image: await buildHostNodeBase(docker, log), source: 'host-node' };
}

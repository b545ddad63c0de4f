/**
 * The emulator images. Each emulator is bundled with esbuild into one CommonJS file (msgpackr included, no
 * node_modules in the image) and copied onto the base image from ensureBaseImage. One build context, one
 * Dockerfile with a stage per role that differs only in its exec-form CMD: the host-node base has no shell, so
 * no RUN and no shell-form commands. Three targets of one context share the COPY layer, so a build takes seconds.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import type { Logger } from '../../log.js';
import { PACKAGE_VERSION, type Config } from '../../config.js';
import type { Role } from '../driver.js';
import { ensureBaseImage, imageExists, type BaseSource } from './base-image.js';

export const ROLES: readonly Role[] = ['probe', 'stream', 'segmentation'];
export const LABEL_IMAGE = 'io.edgeecho.image';
export const LABEL_VERSION = 'io.edgeecho.version';
export const LABEL_BASE_SOURCE = 'io.edgeecho.base-source';
export const LABEL_BASE_IMAGE = 'io.edgeecho.base-image';
export const LABEL_BUNDLE_SHA = 'io.edgeecho.bundle-sha256';
/** Where the bundled emulators live inside the image. */
export const IMAGE_APP_DIR = '/app';

export type ImageConfig = Pick<Config, 'imageProbe' | 'imageStream' | 'imageSegmentation' | 'baseImage'>;

export function imageFor(config: ImageConfig, role: Role): string {
  return role === 'probe' ? config.imageProbe : role === 'stream' ? config.imageStream : config.imageSegmentation;
}

export interface ImagesResult {
  built: Array<{ role: Role; image: string }>;
  present: Array<{ role: Role; image: string }>;
  /** The base the build used; absent when nothing was built. */
  base?: { image: string; source: BaseSource };
  durationMs: number;
}

const emulatorsDir = (): string => {
  // The sources are bundled, so they are read from the checkout: src/runtime/docker -> repo root, one level
  // more when running the compiled dist/src/runtime/docker (tsc does not emit emulators/ into dist/), or one
  // level up from the production bundle dist/edgeecho.mjs (scripts/bundle.ts).
  for (const up of ['../../../emulators/', '../../../../emulators/', '../emulators/']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(join(dir, 'probe.ts'))) return dir;
  }
  throw new Error(`emulator sources not found beside ${fileURLToPath(import.meta.url)}: expected emulators/probe.ts in the checkout`);
};

/** Bundles each emulator into outDir/<role>.cjs; returns the paths and a hash of the bundles. */
export async function bundleEmulators(outDir: string): Promise<{ files: Record<Role, string>; sha256: string }> {
  const dir = emulatorsDir();
  const entryPoints: Record<string, string> = {};
  for (const role of ROLES) {
    const ts = join(dir, `${role}.ts`);
    entryPoints[role] = existsSync(ts) ? ts : join(dir, `${role}.js`);
  }
  // Loaded only when bundling: a running daemon has no other use for esbuild (about 2 MB of RSS). stop() ends
  // its service child (about 12 MB idle), which otherwise lived as long as the daemon and was SIGKILLed by
  // systemd at every stop of the unit.
  const { build, stop } = await import('esbuild');
  await build({
    entryPoints,
    outdir: outDir,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // msgpackr loads its optional native extractor in a try/catch; the pure-JS path is what ships.
    external: ['msgpackr-extract'],
    legalComments: 'none',
    logLevel: 'silent',
  }).finally(() => stop());
  const hash = createHash('sha256').update(BUILD_RECIPE);
  const files = {} as Record<Role, string>;
  for (const role of ROLES) {
    files[role] = join(outDir, `${role}.cjs`);
    hash.update(await readFile(files[role]));
  }
  return { files, sha256: hash.digest('hex') };
}

/**
 * Part of the bundle hash, so images built by an earlier recipe count as stale: bump it when the Dockerfile or the
 * context's packing changes. 2: file modes normalised in the context (an image built under a umask of 077, as
 * systemd's hardening sets, had an /app unreadable by the container's uid 1000).
 */
const BUILD_RECIPE = 'edgeecho-images-2';

function dockerfile(): string {
  const lines = ['ARG BASE_IMAGE=node:20-bookworm-slim', 'FROM ${BASE_IMAGE} AS app', `COPY app/ ${IMAGE_APP_DIR}/`, `WORKDIR ${IMAGE_APP_DIR}`, 'USER 1000', 'ENV NODE_ENV=production'];
  for (const role of ROLES) lines.push(`FROM app AS ${role}`, `CMD ["node", "${IMAGE_APP_DIR}/${role}.cjs"]`);
  return lines.join('\n') + '\n';
}

function tarStream(dir: string): { stream: NodeJS.ReadableStream; done: Promise<void> } {
  // --mode: the emulators run as uid 1000 and must read what a daemon with a strict umask wrote (the unit's
  // UMask=0027 made the bundles 0640 and every container exit with EACCES on /app/<role>.cjs).
  const tar = spawn('tar', ['-c', '--numeric-owner', '--owner=0', '--group=0', '--mode=u+rwX,go+rX,go-w', '-C', dir, '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  tar.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<void>((resolve, reject) => {
    tar.on('error', reject);
    tar.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar of the build context exited ${code}: ${stderr.trim()}`))));
  });
  return { stream: tar.stdout, done };
}

async function buildTarget(docker: Docker, context: string, role: Role, tag: string, buildargs: Record<string, string>, labels: Record<string, string>): Promise<void> {
  const tar = tarStream(context);
  const stream = (await docker.buildImage(tar.stream as never, { t: tag, target: role, buildargs, labels, rm: true, forcerm: true })) as unknown as NodeJS.ReadableStream;
  const output = await new Promise<Array<{ error?: string; errorDetail?: { message?: string }; stream?: string }>>((resolve, reject) => {
    docker.modem.followProgress(stream, (err, out) => (err ? reject(err) : resolve(out as never)));
  });
  await tar.done;
  const failure = output.find((o) => o.error || o.errorDetail);
  if (failure) {
    const log = output.map((o) => o.stream ?? '').join('').trim().split('\n').slice(-5).join(' | ');
    throw new Error(`building ${tag} (target ${role}) failed: ${failure.error ?? failure.errorDetail?.message}; last output: ${log}`);
  }
  if (!(await imageExists(docker, tag))) throw new Error(`build of ${tag} reported success but the image is absent`);
}

/**
 * Builds the given roles' images (all three by default). Without `force` or `roles`, an image is kept when it is
 * present and either not ours (an operator's image named by EDGEECHO_IMAGE_*) or built from the same emulator
 * bundle; one built from other sources (its bundle hash label differs) is rebuilt, so edited emulators never run stale.
 */
export async function buildEmulatorImages(
  docker: Docker,
  options: { config: ImageConfig; log: Logger; force?: boolean; roles?: readonly Role[] },
): Promise<ImagesResult> {
  const t0 = performance.now();
  const { config, log } = options;
  const context = await mkdtemp(join(tmpdir(), 'edgeecho-images-'));
  try {
    await mkdir(join(context, 'app'));
    const { sha256 } = await bundleEmulators(join(context, 'app'));
    const present: ImagesResult['present'] = [];
    let roles: readonly Role[] = options.roles ?? ROLES;
    if (!options.force && !options.roles) {
      const wanted: Role[] = [];
      for (const role of ROLES) {
        const image = imageFor(config, role);
        const labels = await imageLabels(docker, image);
        if (labels === null) wanted.push(role);
        else if (labels[LABEL_IMAGE] === role && labels[LABEL_BUNDLE_SHA] !== sha256) {
          log.info({ image, built_from: labels[LABEL_BUNDLE_SHA], sources: sha256 }, 'emulator image is stale: rebuilding');
          wanted.push(role);
        } else present.push({ role, image });
      }
      roles = wanted;
    }
    if (roles.length === 0) return { built: [], present, durationMs: performance.now() - t0 };

    const base = await ensureBaseImage(docker, { baseImage: config.baseImage, log });
    await writeFile(join(context, 'Dockerfile'), dockerfile());
    const built: ImagesResult['built'] = [];
    for (const role of roles) {
      const image = imageFor(config, role);
      const labels = {
        [LABEL_IMAGE]: role,
        [LABEL_VERSION]: PACKAGE_VERSION,
        [LABEL_BASE_SOURCE]: base.source,
        [LABEL_BASE_IMAGE]: base.image,
        [LABEL_BUNDLE_SHA]: sha256,
      };
      await buildTarget(docker, context, role, image, { BASE_IMAGE: base.image }, labels);
      built.push({ role, image });
    }
    const durationMs = performance.now() - t0;
    log.info({ built: built.map((b) => b.image), base: base.image, base_source: base.source, duration_ms: Math.round(durationMs) }, 'built emulator images');
    return { built, present, base, durationMs };
  } finally {
    await rm(context, { recursive: true, force: true });
  }
}

/** The image's labels, or null when it is absent. */
async function imageLabels(docker: Docker, ref: string): Promise<Record<string, string> | null> {
  try {
    return (await docker.getImage(ref).inspect()).Config?.Labels ?? {};
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

/** Builds only the images that are missing or stale (the daemon calls this at start). */
export function ensureEmulatorImages(docker: Docker, options: { config: ImageConfig; log: Logger }): Promise<ImagesResult> {
  return buildEmulatorImages(docker, { ...options, force: false });
}

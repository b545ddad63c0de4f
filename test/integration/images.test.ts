/**
 * The emulator images build, and a full probe -> stream -> segmentation run inside containers (locked down as
 * the daemon runs them) completes with nothing lost.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type Docker from 'dockerode';
import { dockerOrSkip } from '../support/docker.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { buildEmulatorImages, ensureEmulatorImages, imageFor, LABEL_BASE_SOURCE, LABEL_IMAGE, LABEL_VERSION } from '../../src/runtime/docker/images.js';
import type { Role } from '../../src/runtime/driver.js';

const docker = await dockerOrSkip('integration/images');
const { config } = loadConfig({ env: {} });
const LABELS = { 'io.edgeecho.managed': 'true', 'io.edgeecho.test': 'emulators' };
const COUNT = 50_000;

/** Splits Docker's multiplexed log stream (8-byte header per chunk) and keeps stdout. */
function stdoutOf(raw: Buffer): string {
  let out = '';
  for (let pos = 0; pos + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(pos + 4);
    if (raw[pos] === 1) out += raw.subarray(pos + 8, pos + 8 + size).toString();
    pos += 8 + size;
  }
  return out;
}

if (docker) {
  test('images build from the base and carry role, version and base-source labels', async () => {
    const result = await buildEmulatorImages(docker, { config, log: silentLogger, force: true });
    assert.equal(result.built.map((b) => b.role).sort(), ['probe', 'segmentation', 'stream']);
    assert.ok(result.base, 'the result says which base was used');
    for (const role of ['probe', 'stream', 'segmentation'] as Role[]) {
      const info = await docker.getImage(imageFor(config, role)).inspect();
      assert.is(info.Config.Labels[LABEL_IMAGE], role);
      assert.is(info.Config.Labels[LABEL_VERSION], config.imageProbe.split(':').pop());
      assert.is(info.Config.Labels[LABEL_BASE_SOURCE], result.base!.source);
      assert.equal(info.Config.Cmd, ['node', `/app/${role}.cjs`]);
    }
    const again = await ensureEmulatorImages(docker, { config, log: silentLogger });
    assert.is(again.built.length, 0, 'ensure builds nothing when every image is present');
    assert.is(again.present.length, 3);
  });

  test('images built under a umask of 077 (systemd hardening) still run as uid 1000', async () => {
    const names = { EDGEECHO_IMAGE_PROBE: `edgeecho-test/umask-probe:${process.pid}`, EDGEECHO_IMAGE_STREAM: `edgeecho-test/umask-stream:${process.pid}`, EDGEECHO_IMAGE_SEGMENTATION: `edgeecho-test/umask-segmentation:${process.pid}` };
    const { config: strict } = loadConfig({ env: names });
    const previous = process.umask(0o077);
    try {
      await buildEmulatorImages(docker, { config: strict, log: silentLogger, force: true, roles: ['probe'] });
    } finally {
      process.umask(previous);
    }
    try {
      const container = await docker.createContainer({ Image: names.EDGEECHO_IMAGE_PROBE, User: '1000:1000', Entrypoint: ['node'], Cmd: ['-e', "require('fs').readFileSync('/app/probe.cjs'); console.log('readable')"], Labels: LABELS });
      try {
        await container.start();
        const { StatusCode } = await container.wait();
        const out = stdoutOf((await container.logs({ stdout: true, stderr: true })) as unknown as Buffer);
        assert.is(StatusCode, 0, out);
        assert.match(out, 'readable');
      } finally {
        await container.remove({ force: true });
      }
    } finally {
      await docker.getImage(names.EDGEECHO_IMAGE_PROBE).remove({ force: true }).catch(() => undefined);
    }
  });

  test('probe -> stream -> segmentation in locked-down containers: 0 lost, checksum ok', async () => {
    const suffix = `${process.pid}-${Date.now().toString(36)}`;
    const network = await docker.createNetwork({ Name: `edgeecho-test-emulators-${suffix}`, Driver: 'bridge', Labels: LABELS });
    const containers: Docker.Container[] = [];
    try {
      const env: Record<Role, string[]> = {
        probe: [`PROBE_ID=it-${suffix}`, `PROBE_COUNT=${COUNT}`, 'PROBE_PAYLOAD_BYTES=64'],
        stream: ['STREAM_MODE=segmented'],
        segmentation: ['SEGMENT_FRAMES=1000'],
      };
      // Started in reverse order on purpose: each side retries until its peer answers.
      for (const role of ['segmentation', 'stream', 'probe'] as Role[]) {
        const container = await docker.createContainer({
          name: `edgeecho-test-emulators-${suffix}-${role}`,
          Image: imageFor(config, role),
          Env: [...env[role], 'EMULATOR_IDLE_TIMEOUT_MS=20000'],
          User: '1000',
          Labels: { ...LABELS, 'io.edgeecho.role': role },
          HostConfig: {
            Init: true,
            ReadonlyRootfs: true,
            CapDrop: ['ALL'],
            SecurityOpt: ['no-new-privileges'],
            NetworkMode: network.id,
            Memory: 256 * 1024 * 1024,
          },
          NetworkingConfig: { EndpointsConfig: { [network.id]: { Aliases: [role] } } },
        });
        containers.push(container);
        await container.start();
      }
      const results = await Promise.all(
        containers.map(async (c) => {
          const waited = (await Promise.race([
            c.wait(),
            new Promise((_, reject) => setTimeout(() => reject(new Error('container did not exit within 60 s')), 60_000).unref()),
          ])) as { StatusCode: number };
          const lines = stdoutOf((await c.logs({ stdout: true, stderr: false })) as unknown as Buffer).trim().split('\n');
          return { code: waited.StatusCode, lines: lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
        }),
      );
      const [segmentation, stream, probe] = results as [(typeof results)[0], (typeof results)[0], (typeof results)[0]];
      for (const r of results) {
        assert.is(r.lines[0]!.event, 'ready', JSON.stringify(r.lines));
        assert.is(r.lines.at(-1)!.event, 'stats', JSON.stringify(r.lines));
        assert.is(r.code, 0, JSON.stringify(r.lines.at(-1)));
      }
      const stats = segmentation.lines.at(-1)!;
      assert.is(stats.frames, COUNT);
      assert.is(stats.lost, 0);
      assert.is(stats.checksum_ok, true);
      assert.is(stats.segments, COUNT / 1000);
      assert.is(stream.lines.at(-1)!.frames, COUNT);
      assert.is((stream.lines[0]!.probe as Record<string, unknown>).count, COUNT);
      assert.is(probe.lines.at(-1)!.checksum, stats.checksum);
    } finally {
      for (const c of containers) await c.remove({ force: true }).catch(() => undefined);
      await network.remove().catch(() => undefined);
    }
  });
}

test.run();

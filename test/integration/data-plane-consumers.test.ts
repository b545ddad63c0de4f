/**
 * The data plane through a real daemon and real containers (protocol/DATA.md): a socket that reads to EOF and
 * closes without any ack completes a plain session; two consumers; one that leaves mid-stream; `edgeecho consume
 * --raw` writes count x payload bytes; a corrupted payload is caught by the CLI and the library. The corruption
 * comes from a probe image only this test builds (env PROBE_FAULT_CORRUPT_SEQ baked in): clients never set env.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, consume, EdgeechoError, type Client } from '../../src/client/index.js';
import { PACKAGE_VERSION } from '../../src/config.js';
import { dockerOrSkip } from '../support/docker.js';
import { cleanupDaemons, runLabel, startDaemonProcess, TEST_LABEL, type DaemonProcess, type SessionView } from '../../support/daemon-process.js';
import { finish, spawnCli } from '../support/run-cli.js';

const LABEL = runLabel('data-plane-consumers');
const docker = await dockerOrSkip('integration/data-plane-consumers');

interface Created {
  id: string;
  location: { host: string; port: number };
}

/** Reads the location like `nc -d HOST PORT > file`: every byte until EOF, then closes; sends nothing. */
function readToEof(location: { host: string; port: number }, dropAfter?: number): Promise<{ bytes: Buffer; eof: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(location.port, location.host);
    const chunks: Buffer[] = [];
    let n = 0;
    let eof = false;
    const timer = setTimeout(() => reject(new Error(`no EOF from ${location.host}:${location.port} within 60 s`)), 60_000);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      n += c.length;
      if (dropAfter !== undefined && n >= dropAfter) socket.destroy();
    });
    socket.on('end', () => (eof = true));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ bytes: Buffer.concat(chunks), eof });
    });
  });
}

const streamStats = (view: SessionView): Record<string, unknown> => view.containers.find((c) => c.role === 'stream')?.stats ?? {};

if (docker) {
  let daemon: DaemonProcess | undefined;
  let faulty: DaemonProcess | undefined;
  let client: Client | undefined;
  const faultImage = `edgeecho-test/probe-corrupt:${LABEL}`;

  test.before(async () => {
    daemon = await startDaemonProcess({ label: LABEL, args: ['--plain-grace-ms', '30000'] });
    client = await connect({ port: daemon.port });
  });

  test.after(async () => {
    await client?.close().catch(() => undefined);
    await cleanupDaemons(docker, LABEL, [daemon, faulty], [daemon, faulty].flatMap((d) => (d ? [d.dataDir] : [])));
    await docker.getImage(faultImage).remove({ force: true }).catch(() => undefined);
  });

  const create = (args: Record<string, unknown>, c = client!): Promise<Created> => c.request<Created>('session.create', { mode: 'plain', ...args }, { timeoutMs: 120_000 });
  const watch = (id: string, c = client!): Promise<SessionView> => c.request<SessionView>('session.watch', { id }, { timeoutMs: 120_000 });

  test('a socket that reads to EOF and closes, sending nothing, ends the plain session completed', async () => {
    const count = 20_000;
    const { id, location } = await create({ count, payload_bytes: 100 });
    const got = await readToEof(location);
    assert.ok(got.eof, 'the stream half-closes after the end frame');
    const frameBytes = 4 + 42 + 100;
    const detailsBytes = got.bytes.readUInt32BE(0) + 4;
    const endBytes = got.bytes.length - detailsBytes - count * frameBytes;
    assert.ok(endBytes > 4 && endBytes < 40, `details + ${count} frames + one end frame, got ${got.bytes.length} bytes`);
    const final = await watch(id);
    assert.is(final.state, 'completed', JSON.stringify(final.error));
    const s = streamStats(final);
    assert.equal([s.consumers, s.completed_consumers, s.acked_consumers, s.left_consumers], [1, 1, 0, 0], JSON.stringify(s));
  });

  test('two consumers: the library from seq 0, a second joining late from a later seq; both complete', async () => {
    const count = 6000;
    const { id, location } = await create({ count, rate: 4000 });
    const first = consume(location);
    const seqs: number[] = [];
    let second: Promise<{ bytes: Buffer; eof: boolean }> | undefined;
    for await (const f of first) {
      seqs.push(f.seq);
      if (f.seq === 1000) second = readToEof(location);
    }
    assert.is(seqs.length, count);
    assert.ok(first.summary.complete && first.summary.checksum_ok);
    const late = await second!;
    assert.ok(late.eof);
    const lateFrames = (late.bytes.length - late.bytes.readUInt32BE(0) - 4) / (4 + 42 + 64);
    assert.ok(lateFrames < count - 1000, `the late consumer starts after seq 1000 (about ${Math.floor(lateFrames)} frames)`);
    const final = await watch(id);
    assert.is(final.state, 'completed', JSON.stringify(final.error));
    const s = streamStats(final);
    assert.equal([s.consumers, s.late_consumers, s.completed_consumers, s.acked_consumers], [2, 1, 2, 1], JSON.stringify(s));
  });

  test('a consumer that disconnects mid-stream is counted left; the session still completes', async () => {
    const { id, location } = await create({ count: 6000, rate: 6000 });
    const got = await readToEof(location, 50_000);
    assert.not.ok(got.eof);
    const final = await watch(id);
    assert.is(final.state, 'completed', JSON.stringify(final.error));
    const s = streamStats(final);
    assert.equal([s.consumers, s.left_consumers, s.completed_consumers], [1, 1, 0], JSON.stringify(s));
  });

  test('edgeecho consume ID --raw: count x payload bytes on stdout, a summary on stderr, exit 0', async () => {
    const count = 50_000;
    const payload = 256;
    const { id } = await create({ count, payload_bytes: payload });
    const r = await finish(spawnCli(['consume', id, '--raw', '--port', String(daemon!.port)]), 60_000);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdoutBytes.length, count * payload);
    assert.match(r.stderr, new RegExp(`consume: ${count} frames, \\d+ bytes, lost 0, out of order 0, checksum ok`));
    assert.is((await watch(id)).state, 'completed');
  });

  test('a corrupted payload: the CLI exits 1 saying checksum MISMATCH, the library throws DATA_LOSS', async () => {
    const from = process.env.EDGEECHO_IMAGE_PROBE || `edgeecho/probe:${PACKAGE_VERSION}`;
    await buildFaultImage(faultImage, from, { PROBE_FAULT_CORRUPT_SEQ: '777' });
    faulty = await startDaemonProcess({ label: LABEL, args: ['--plain-grace-ms', '30000'], env: { EDGEECHO_IMAGE_PROBE: faultImage } });
    const c = await connect({ port: faulty.port });
    try {
      const cli = await create({ count: 2000 }, c);
      const r = await finish(spawnCli(['consume', cli.id, '--port', String(faulty.port)]), 60_000);
      assert.is(r.code, 1, r.stderr);
      assert.match(r.stderr, /consume: 2000 frames, \d+ bytes, lost 0, out of order 0, checksum MISMATCH/);
      assert.match(r.stderr, /error DATA_LOSS: checksum mismatch/);
      assert.is(r.stdout.trim().split('\n').length, 2002, 'every frame is still written: details, 2000 data frames, end');

      const lib = await create({ count: 2000 }, c);
      let n = 0;
      try {
        for await (const _ of consume(lib.location)) n++;
        assert.unreachable('a corrupted stream must not end cleanly');
      } catch (err) {
        assert.instance(err, EdgeechoError);
        assert.is((err as EdgeechoError).code, 'DATA_LOSS');
        assert.match((err as EdgeechoError).message, /checksum mismatch/);
      }
      assert.is(n, 2000);
      // The stream relays without reading payloads: the session completes; only the consumer can tell.
      assert.is((await watch(lib.id, c)).state, 'completed');
    } finally {
      await c.close();
    }
  });
}

/** FROM the probe image with env baked in; labelled not-ours so the daemon neither rebuilds nor replaces it. */
async function buildFaultImage(tag: string, from: string, env: Record<string, string>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeecho-fault-image-'));
  try {
    const lines = [`FROM ${from}`, ...Object.entries(env).map(([k, v]) => `ENV ${k}=${v}`), `LABEL io.edgeecho.image=probe-fault-test ${TEST_LABEL}=${LABEL}`];
    await writeFile(join(dir, 'Dockerfile'), lines.join('\n') + '\n');
    const tar = spawn('tar', ['-c', '-C', dir, 'Dockerfile'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const stream = await docker!.buildImage(tar.stdout as never, { t: tag, rm: true });
    const out = await new Promise<Array<{ error?: string }>>((resolve, reject) => docker!.modem.followProgress(stream, (err, res) => (err ? reject(err) : resolve(res as never))));
    const failed = out.find((o) => o.error);
    if (failed) throw new Error(`building ${tag} from ${from} failed: ${failed.error}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test.run();

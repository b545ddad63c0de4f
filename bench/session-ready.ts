/**
 * Time to ready of plain and segmented sessions (the session lifecycle's create: workflow engine and DockerDriver)
 * beside a lower bound measured in the same run: the same network and hardened containers created and started
 * with raw parallel dockerode calls, waiting for the same ready lines and the published port.
 * `npm run bench -- session-ready [iterations=3]`. Target: ready <= 1.1x the raw bound.
 */
import Docker from 'dockerode';
import { loadConfig } from '../src/config.js';
import { rawSessions, removeSession } from '../support/raw-session.js';
import { silentLogger } from '../src/log.js';
import { DockerDriver } from '../src/runtime/docker/driver.js';
import { ensureEmulatorImages } from '../src/runtime/docker/images.js';
import { SessionBus } from '../src/sessions/events.js';
import { SessionLifecycle } from '../src/sessions/lifecycle.js';
import { openSessionStore } from '../src/sessions/sqlite-store.js';

const LABELS = { 'io.edgeecho.test': 'bench' };
const MAX_ITERATIONS = 10;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export default async function main(argv: string[]): Promise<void> {
  const iterations = Math.min(MAX_ITERATIONS, Math.max(1, Number(argv[0] ?? 3) || 3));
  const { config } = loadConfig({ env: { ...process.env, EDGEECHO_PLAIN_GRACE_MS: '1000' } });
  const docker = new Docker({ socketPath: config.dockerSocket });
  await ensureEmulatorImages(docker, { config, log: silentLogger });
  const driver = new DockerDriver({ docker, subnetPool: config.subnetPool, subnetPrefix: config.subnetPrefix });
  const startOrder = (process.env.BENCH_START_ORDER ?? 'parallel') as 'parallel' | 'after-start' | 'after-ready';
  // Admission is not what is measured: it admits everything.
  const admission = { admit: () => undefined, release: () => undefined, adopt: () => undefined };
  const lifecycle = new SessionLifecycle({ driver, store: openSessionStore(':memory:'), bus: new SessionBus(), admission, config, log: silentLogger, labels: LABELS, startOrder });
  const signal = new AbortController().signal;

  const raw = await rawSessions(docker, config, LABELS);
  const made = new Set<string>();

  async function ours(mode: 'plain' | 'segmented'): Promise<{ ms: number; id: string }> {
    const t0 = performance.now();
    const result = await lifecycle.create({ mode, count: 10 }, { signal, status: (f) => void (typeof f.session === 'string' && made.add(f.session)) });
    return { ms: performance.now() - t0, id: result.id };
  }

  const rows: Array<{ mode: string; ours_ms: number; raw_ms: number; ratio: number; ours: number[]; raw: number[] }> = [];
  try {
    for (const mode of ['plain', 'segmented'] as const) {
      const o: number[] = [];
      const r: number[] = [];
      // one warm-up each, then alternate so drift in the engine hits both alike
      for (let i = -1; i < iterations; i++) {
        for (const [kind, fn] of [['raw', (m: typeof mode) => raw(m, made)], ['ours', ours]] as const) {
          const { ms, id } = await fn(mode);
          await removeSession(docker, id);
          if (i >= 0) (kind === 'raw' ? r : o).push(ms);
        }
      }
      rows.push({ mode, ours_ms: Math.round(median(o)), raw_ms: Math.round(median(r)), ratio: Math.round((median(o) / median(r)) * 100) / 100, ours: o.map(Math.round), raw: r.map(Math.round) });
    }
  } finally {
    for (const id of made) await removeSession(docker, id);
  }
  console.log(`session ready time, median of ${iterations} (ms)`);
  console.log('mode        session.create   raw parallel   ratio (target <= 1.10)');
  for (const row of rows) console.log(`${row.mode.padEnd(12)}${String(row.ours_ms).padStart(14)}${String(row.raw_ms).padStart(15)}${row.ratio.toFixed(2).padStart(8)}`);
  console.log(JSON.stringify({ bench: 'session-ready', iterations, results: rows }));
}

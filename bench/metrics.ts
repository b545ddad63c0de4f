/**
 * The cost of metrics: ping throughput (pipelined, 256 in flight, and serial) against two daemons as shipped, one
 * with EDGEECHO_METRICS on and scraped every SCRAPE_MS over HTTP (far more often than Prometheus' default 15 s),
 * one with it off. Runs alternate; best of RUNS each. Last line: one JSON object with the figures and on/off ratios.
 */
import { runLoad, startServerChild, type Result } from './ping.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PIPELINE = Number(process.env.BENCH_PIPELINE ?? 256);
const SCRAPE_MS = Number(process.env.BENCH_SCRAPE_MS ?? 1000);

/** Scrapes until stopped; returns how many scrapes and the largest body. */
function scrapeLoop(port: number): { stop(): Promise<{ scrapes: number; bytes: number; worstMs: number }> } {
  let running = true;
  let scrapes = 0;
  let bytes = 0;
  let worstMs = 0;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      const text = await res.text();
      if (res.status !== 200) throw new Error(`scrape answered ${res.status}: ${text.slice(0, 200)}`);
      worstMs = Math.max(worstMs, performance.now() - t0);
      bytes = Math.max(bytes, text.length);
      scrapes++;
      await new Promise((r) => setTimeout(r, SCRAPE_MS));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { scrapes, bytes, worstMs: Math.round(worstMs) };
    },
  };
}

export default async function main(): Promise<void> {
  const on = await startServerChild('daemon', { args: ['--metrics', '127.0.0.1:0'] });
  const off = await startServerChild('daemon');
  if (on.metricsPort === undefined) throw new Error('the daemon with --metrics logged no "metrics listening" line');
  const best: Record<string, Result> = {};
  const keep = (key: string, r: Result): void => {
    if (!best[key] || r.reqPerSec > best[key]!.reqPerSec) best[key] = r;
  };
  const scraper = scrapeLoop(on.metricsPort);
  let scraped;
  try {
    for (let run = 0; run < RUNS; run++) {
      keep('on-pipelined', await runLoad(on.port, PIPELINE, true));
      keep('off-pipelined', await runLoad(off.port, PIPELINE, true));
      keep('on-serial', await runLoad(on.port, 1, true));
      keep('off-serial', await runLoad(off.port, 1, true));
    }
  } finally {
    scraped = await scraper.stop();
    await Promise.all([on.stop(), off.stop()]);
  }
  const ratio = (kind: string): number => best[`on-${kind}`]!.reqPerSec / best[`off-${kind}`]!.reqPerSec;
  console.log(`ping, metrics on (scraped every ${SCRAPE_MS} ms: ${scraped.scrapes} scrapes, ${scraped.bytes} bytes, slowest ${scraped.worstMs} ms) vs off; best of ${RUNS}`);
  console.log('| load           |     req/s |  p50 µs |  p99 µs |');
  console.log('|----------------|-----------|---------|---------|');
  for (const key of ['on-pipelined', 'off-pipelined', 'on-serial', 'off-serial']) {
    const r = best[key]!;
    console.log(`| ${key.padEnd(14)} | ${String(r.reqPerSec).padStart(9)} | ${String(r.p50us).padStart(7)} | ${String(r.p99us).padStart(7)} |`);
  }
  console.log(`on/off: pipelined ${(ratio('pipelined') * 100).toFixed(1)}%, serial ${(ratio('serial') * 100).toFixed(1)}%  (target >= 95%)`);
  console.log(
    JSON.stringify({
      bench: 'metrics',
      on_pipelined_rps: best['on-pipelined']!.reqPerSec,
      off_pipelined_rps: best['off-pipelined']!.reqPerSec,
      on_serial_rps: best['on-serial']!.reqPerSec,
      off_serial_rps: best['off-serial']!.reqPerSec,
      scrapes: scraped.scrapes,
      scrape_bytes: scraped.bytes,
      slowest_scrape_ms: scraped.worstMs,
      ratio_pipelined: Number(ratio('pipelined').toFixed(3)),
      ratio_serial: Number(ratio('serial').toFixed(3)),
    }),
  );
}

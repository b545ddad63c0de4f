/**
 * The warm pools' policy against a recording Parking: hits and misses, refills bounded by the concurrency
 * setting, recycling at the maximum age (injected timers), room given to cold creates (the oldest parked session,
 * else a park under way), adoption trimmed to the settings, and a mode whose images cannot park staying empty.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EdgeechoError } from '../../protocol/errors.js';
import { silentLogger } from '../../src/log.js';
import type { ParkedEntry } from '../../src/sessions/parked-store.js';
import type { Parking, ParkedReconcileReport } from '../../src/sessions/parking.js';
import { DEFAULT_REFILL_DEFER_MS, SessionPool, type PoolSettings, type PoolTimers } from '../../src/sessions/pool.js';
import type { SessionMode } from '../../src/workflow/session-spec.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Parks settle when the test says; every call is recorded. */
class FakeParking {
  supported = true;
  readonly parks: Array<{ id: string; mode: SessionMode; signal: AbortSignal; resolve: () => void; reject: (e: Error) => void }> = [];
  readonly discarded: Array<{ id: string; reason: string }> = [];
  rows = new Set<string>();
  adopted: ParkedEntry[] = [];
  now = 0;

  park(mode: SessionMode, signal: AbortSignal, id: string): Promise<ParkedEntry> {
    this.rows.add(id);
    return new Promise((resolve, reject) => {
      const entry: ParkedEntry = { id, mode, state: 'parked', createdAt: this.now, network: null, containers: [], location: null };
      const settle = { id, mode, signal, resolve: () => resolve(entry), reject: (e: Error) => (this.rows.delete(id), reject(e)) };
      signal.addEventListener('abort', () => settle.reject(signal.reason as Error), { once: true });
      this.parks.push(settle);
    });
  }
  async discard(id: string, reason: string): Promise<void> {
    this.discarded.push({ id, reason });
    this.rows.delete(id);
  }
  discarding(): boolean {
    return false;
  }
  isParked(id: string): boolean {
    return this.rows.has(id);
  }
  parkedIds(): string[] {
    return [...this.rows];
  }
  entries(): ParkedEntry[] {
    return [];
  }
  async reconcile(): Promise<ParkedReconcileReport> {
    return { adopted: this.adopted, discarded: [] };
  }
}

class FakeTimers implements PoolTimers {
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  private next = 1;
  setTimeout(fn: () => void, ms: number): unknown {
    const h = this.next++;
    this.pending.set(h, { fn, ms });
    return h;
  }
  clearTimeout(h: unknown): void {
    this.pending.delete(h as number);
  }
  fire(ms: number): void {
    for (const [h, t] of [...this.pending]) if (t.ms === ms) (this.pending.delete(h), t.fn());
  }
}

function pool(settings: Partial<PoolSettings>, parking = new FakeParking(), timers = new FakeTimers()) {
  const all: PoolSettings = { poolPlain: 0, poolSegmented: 0, poolMaxAgeS: 60, poolRefillConcurrency: 2, ...settings };
  return { parking, timers, pool: new SessionPool(parking as unknown as Parking, all, silentLogger, { timers, now: () => parking.now }) };
}

async function settleAll(parking: FakeParking): Promise<void> {
  while (parking.parks.length) {
    parking.parks.shift()!.resolve();
    await tick();
  }
}

test('refills up to the sizes with at most the refill concurrency at once, neediest mode first', async () => {
  const { parking, pool: p } = pool({ poolPlain: 3, poolSegmented: 1 });
  p.start();
  assert.is(parking.parks.length, 2, 'two parks at once (EDGEECHO_POOL_REFILL_CONCURRENCY=2)');
  assert.equal(parking.parks.map((x) => x.mode), ['plain', 'plain']);
  await settleAll(parking);
  assert.equal(p.view().plain.parked, 3);
  assert.equal(p.view().segmented.parked, 1);
  assert.is(parking.parks.length, 0);
});

test('take: a hit hands out the oldest parked session and refills behind it; an empty pool counts a miss', async () => {
  const { parking, pool: p } = pool({ poolPlain: 1 });
  p.start();
  const first = parking.parks[0]!.id;
  assert.is(p.take('plain'), null, 'nothing parked yet: a miss');
  await settleAll(parking);
  assert.is(p.take('plain')?.id, first);
  assert.is(parking.parks.length, 0, 'the refill waits for the claim');
  p.claimEnded();
  assert.is(parking.parks.length, 1, 'the claim ended: the refill starts');
  assert.is(p.take('segmented'), null, 'no segmented pool: neither hit nor miss');
  const v = p.view();
  assert.equal([v.plain.hits, v.plain.misses, v.segmented.misses], [1, 1, 0]);
  assert.ok(p.enabled('plain'));
  assert.not.ok(p.enabled('segmented'));
});

test('refills wait while claims run, at most DEFAULT_REFILL_DEFER_MS', async () => {
  const { parking, timers, pool: p } = pool({ poolPlain: 2 });
  p.start();
  await settleAll(parking);
  p.take('plain');
  p.take('plain');
  assert.is(parking.parks.length, 0);
  p.claimEnded();
  assert.is(parking.parks.length, 0, 'one claim still runs');
  parking.now += DEFAULT_REFILL_DEFER_MS;
  timers.fire(DEFAULT_REFILL_DEFER_MS);
  assert.is(parking.parks.length, 2, 'overdue: the refill goes ahead');
  await settleAll(parking);
  p.take('plain');
  assert.is(parking.parks.length, 1, 'claims running longer than the limit no longer hold refills back');
});

test('work handed to afterClaims runs at once without claims, else when they end or at most DEFAULT_REFILL_DEFER_MS later', async () => {
  const { parking, timers, pool: p } = pool({ poolPlain: 3 });
  p.start();
  await settleAll(parking);
  const ran: string[] = [];
  p.afterClaims(() => ran.push('idle'));
  assert.equal(ran, ['idle'], 'no claim runs: at once');
  p.take('plain');
  p.take('plain');
  p.afterClaims(() => ran.push('a'));
  p.afterClaims(() => ran.push('b'));
  p.claimEnded();
  assert.equal(ran, ['idle'], 'one claim still runs');
  p.claimEnded();
  assert.equal(ran, ['idle', 'a', 'b'], 'the claims ended: in the order handed over');
  p.take('plain');
  p.afterClaims(() => ran.push('late'));
  parking.now += DEFAULT_REFILL_DEFER_MS;
  timers.fire(DEFAULT_REFILL_DEFER_MS);
  assert.equal(ran.at(-1), 'late', 'overdue: it runs though the claim still does');
  p.claimEnded();
  assert.is(ran.length, 4, 'each task runs once');
});

test('a parked session older than EDGEECHO_POOL_MAX_AGE_S is discarded and replaced', async () => {
  const { parking, timers, pool: p } = pool({ poolPlain: 1, poolMaxAgeS: 60 });
  p.start();
  const id = parking.parks[0]!.id;
  await settleAll(parking);
  timers.fire(60_000);
  await tick();
  assert.equal(parking.discarded, [{ id, reason: 'parked longer than 60 s (EDGEECHO_POOL_MAX_AGE_S)' }]);
  assert.is(parking.parks.length, 1, 'replaced');
  assert.is(p.view().plain.recycled, 1);
});

test('evictForRoom gives up the oldest parked session, else cancels a park under way, else says no', async () => {
  const { parking, pool: p } = pool({ poolPlain: 1, poolSegmented: 1, poolRefillConcurrency: 1 });
  p.start();
  const plain = parking.parks[0]!.id;
  await settleAll(parking);
  assert.ok(await p.evictForRoom());
  assert.is(parking.discarded[0]!.id, plain);
  // Nothing parked of plain now; the refill under way is cancelled for the room, and does not retry on its own.
  p.take('segmented');
  p.claimEnded();
  assert.is(parking.parks.length, 1);
  const inFlight = parking.parks[0]!;
  assert.ok(await p.evictForRoom());
  assert.ok(inFlight.signal.aborted);
  parking.parks.length = 0;
  await tick();
  assert.is(parking.parks.length, 0, 'a park that yielded waits for room');
  assert.not.ok(await p.evictForRoom());
  p.roomFreed();
  assert.is(parking.parks.length, 1, 'a session ending lets the pool refill');
});

test('adopt keeps what fits the settings and discards the surplus (a restart with a smaller pool)', async () => {
  const parking = new FakeParking();
  parking.adopted = ['a', 'b', 'c'].map((id) => ({ id, mode: 'plain' as const, state: 'parked' as const, createdAt: 0, network: null, containers: [], location: null }));
  const { pool: p } = pool({ poolPlain: 1 }, parking);
  const report = await p.adopt({ containers: [], networks: [] });
  assert.equal(report.adopted.map((e) => e.id), ['a']);
  assert.equal(parking.discarded.map((d) => d.id), ['b', 'c']);
  assert.is(p.take('plain')?.id, 'a');
});

test('images that cannot park: the pool of that mode reports why and stays empty', async () => {
  const { parking, pool: p } = pool({ poolPlain: 2, poolRefillConcurrency: 1 });
  p.start();
  parking.parks.shift()!.reject(new EdgeechoError('INTERNAL', 'edgeecho/probe cannot park', { cannot_park: true }));
  await tick();
  assert.is(parking.parks.length, 0);
  assert.match(p.view().plain.error ?? '', /cannot park/);
  p.roomFreed();
  assert.is(parking.parks.length, 0);
});

test('a runtime without unpark: configured pools report it and never park', () => {
  const parking = new FakeParking();
  parking.supported = false;
  const { pool: p } = pool({ poolSegmented: 1 }, parking);
  p.start();
  assert.is(parking.parks.length, 0);
  assert.match(p.view().segmented.error ?? '', /cannot park/);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SubnetPool } from '../../../src/runtime/docker/subnets.js';

test('cuts consecutive subnets of the prefix from the pool', () => {
  const pool = new SubnetPool('10.213.0.0/16', 28);
  assert.is(pool.size, 4096);
  assert.is(pool.allocate(), '10.213.0.0/28');
  assert.is(pool.allocate(), '10.213.0.16/28');
});

test('skips every subnet a network on the engine overlaps, whatever its size; networks outside the pool change nothing', () => {
  const pool = new SubnetPool('10.213.0.0/16', 28);
  pool.markUsed('10.213.0.0/28');
  pool.markUsed('172.17.0.0/16');
  pool.markUsed('10.213.1.0/24'); // another daemon's pool cut in /24s: 16 of ours
  assert.is(pool.allocate(), '10.213.0.16/28');
  assert.is(pool.free, 4096 - 1 - 16 - 1);
  assert.ok(pool.isUsed('10.213.1.32/28'));
  for (let i = 0; i < 14; i++) pool.allocate();
  assert.is(pool.allocate(), '10.213.2.0/28', 'the /24 is stepped over');
});

test('observe replaces what was seen: a network removed meanwhile frees its subnet, a new one takes its own', () => {
  const pool = new SubnetPool('10.0.0.0/28', 30);
  pool.observe(['10.0.0.0/30', '10.0.0.4/30']);
  assert.is(pool.free, 2);
  pool.observe(['10.0.0.8/30']);
  assert.is(pool.free, 3);
  assert.is(pool.allocate(), '10.0.0.0/30');
  pool.observe([]);
  assert.ok(pool.isUsed('10.0.0.0/30'), 'what this pool handed out stays taken until released');
  pool.release('10.0.0.0/30');
  assert.not.ok(pool.isUsed('10.0.0.0/30'));
});

test('start: two pools starting apart hand out different subnets', () => {
  const a = new SubnetPool('10.213.0.0/16', 28, { start: 0 });
  const b = new SubnetPool('10.213.0.0/16', 28, { start: 4096 + 2048 });
  assert.is(a.allocate(), '10.213.0.0/28');
  assert.is(b.allocate(), '10.213.128.0/28');
});

test('a freed subnet is reused only after the others (round-robin)', () => {
  const pool = new SubnetPool('10.0.0.0/29', 30);
  const a = pool.allocate();
  pool.release(a);
  assert.is(pool.allocate(), '10.0.0.4/30');
  assert.is(pool.allocate(), a);
});

test('exhaustion is RESOURCE_EXHAUSTED naming the settings', () => {
  const pool = new SubnetPool('10.0.0.0/29', 30);
  pool.allocate();
  pool.allocate();
  try {
    pool.allocate();
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code: string }).code, 'RESOURCE_EXHAUSTED');
    assert.match((err as Error).message, 'EDGEECHO_SUBNET_PREFIX');
  }
});

test('refuses a prefix wider than the pool', () => {
  assert.throws(() => new SubnetPool('10.213.0.0/16', 12), /EDGEECHO_SUBNET_PREFIX/);
});

test.run();

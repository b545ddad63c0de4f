import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SubnetPool } from '../../../src/runtime/docker/subnets.js';

test('cuts consecutive subnets of the prefix from the pool', () => {
  const pool = new SubnetPool('10.213.0.0/16', 28);
  assert.is(pool.size, 4096);
  assert.is(pool.allocate(), '10.213.0.0/28');
  assert.is(pool.allocate(), '10.213.0.16/28');
});

test('skips subnets marked used by existing networks and ignores foreign ones', () => {
  const pool = new SubnetPool('10.213.0.0/16', 28);
  pool.markUsed('10.213.0.0/28');
  pool.markUsed('172.17.0.0/16');
  pool.markUsed('10.213.0.16/24'); // another size: not one of ours
  assert.is(pool.allocate(), '10.213.0.16/28');
  assert.is(pool.free, 4094);
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

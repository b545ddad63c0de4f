/** Local ports: handed out below the kernel's ephemeral range, never one a listener holds or a live session has. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { EdgeechoError } from '../../../protocol/errors.js';
import { PortAllocator, portRange, tryPort, DEFAULT_PORT_LOW } from '../../../src/runtime/local/ports.js';

test('the range ends below the ephemeral one, and there is none when too little room is left', () => {
  assert.equal(portRange([32768, 60999]), [DEFAULT_PORT_LOW, 32767]);
  assert.is(portRange([20500, 60999]), null);
  const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  const range = portRange();
  assert.ok(range === null || range[1] === ephemeralLow - 1, `this host: ${JSON.stringify(range)} below ${ephemeralLow}`);
});

test('a port a listener holds and a port of a live session are skipped; none left is RESOURCE_EXHAUSTED', async () => {
  // Three consecutive ports free right now, in the allocator's range.
  let low = DEFAULT_PORT_LOW + 5000 + Math.floor(Math.random() * 5000);
  while ((await Promise.all([low, low + 1, low + 2].map(tryPort))).some((p) => p === null)) low += 3;
  const holder: Server = createServer();
  await new Promise<void>((resolve) => holder.listen(low, '127.0.0.1', resolve));
  try {
    const ports = new PortAllocator([low, low + 2]);
    const seen = new Set<number>();
    for (let i = 0; i < 3; i++) seen.add(await ports.allocate(new Set([low + 1])));
    assert.equal([...seen], [low + 2], 'only the port neither held nor taken');
    const err = await ports.allocate(new Set([low + 1, low + 2])).then(
      () => null,
      (e: EdgeechoError) => e,
    );
    assert.is(err?.code, 'RESOURCE_EXHAUSTED');
    assert.match(err!.message, `no free port in ${low}..${low + 2}`);
  } finally {
    await new Promise((r) => holder.close(r));
  }
});

test.run();

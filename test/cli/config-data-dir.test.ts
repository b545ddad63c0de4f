/** EDGEECHO_DATA_DIR means one directory wherever it is used: empty is refused, relative is made absolute. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolve } from 'node:path';
import { loadConfig } from '../../src/config.js';
import type { EdgeechoError } from '../../protocol/errors.js';

test('an empty EDGEECHO_DATA_DIR is refused naming the variable; a relative one is resolved once', () => {
  try {
    loadConfig({ env: { EDGEECHO_DATA_DIR: '' }, argv: [] });
    assert.unreachable('an empty data dir must be refused');
  } catch (err) {
    assert.is((err as EdgeechoError).code, 'BAD_REQUEST');
    assert.match((err as Error).message, /EDGEECHO_DATA_DIR.*empty value/);
  }
  assert.is(loadConfig({ env: {}, argv: ['--data-dir', 'state/here'] }).config.dataDir, resolve('state/here'));
});

test.run();

/** README's settings table is `edgeecho config`'s: every setting, with its flag, default and meaning, word for word. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { settingsTable } from '../../src/config.js';

test('every row of edgeecho config stands in README.md as printed', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const rows = settingsTable().split('\n').filter((l) => l.startsWith('| `EDGEECHO_'));
  assert.ok(rows.length > 40, `expected the whole table, got ${rows.length} rows`);
  const missing = rows.filter((row) => !readme.includes(row));
  assert.equal(missing, [], 'regenerate README\'s table from `edgeecho config`');
});

test.run();

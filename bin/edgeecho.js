#!/usr/bin/env node
// Runs the production bundle when `npm run build` has produced it (dist/edgeecho.mjs, scripts/bundle.ts), else
// the tsc output, else the TypeScript source through tsx, so a fresh checkout works after `npm ci` and a service
// install runs plain JavaScript. EDGEECHO_FROM_SOURCE=1 forces the source (tests, and editing without rebuilding).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let entry = [join(root, 'dist', 'edgeecho.mjs'), join(root, 'dist', 'src', 'cli', 'main.js')].find((f) => existsSync(f));
if (!entry || process.env.EDGEECHO_FROM_SOURCE) {
  const { register } = await import('tsx/esm/api');
  register();
  entry = join(root, 'src', 'cli', 'main.ts');
}
const { runCli } = await import(pathToFileURL(entry).href);
await runCli(process.argv.slice(2));

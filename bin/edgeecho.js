#!/usr/bin/env node
// Runs the compiled CLI when `npm run build` has produced it, else the TypeScript source through tsx,
// so a fresh checkout works after `npm ci` and a service install runs plain JavaScript.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'src', 'cli', 'main.js');
let entry = compiled;
if (!existsSync(compiled) || process.env.EDGEECHO_FROM_SOURCE) {
  const { register } = await import('tsx/esm/api');
  register();
  entry = join(root, 'src', 'cli', 'main.ts');
}
const { runCli } = await import(pathToFileURL(entry).href);
await runCli(process.argv.slice(2));

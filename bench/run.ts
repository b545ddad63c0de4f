/** `npm run bench -- <name> [args]`: runs the default export of bench/<name>.ts; lists them when the name is missing or unknown. */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
// helpers the benches spawn end in -server/-child and are not benches themselves
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !/-(server|child)\.ts$/.test(f))
  .map((f) => f.slice(0, -3))
  .sort();

const name = process.argv[2];
if (!name || !available.includes(name)) {
  if (name) process.stderr.write(`no bench named "${name}"\n`);
  process.stderr.write(`usage: npm run bench -- <name> [args]\navailable: ${available.join(', ')}\n`);
  process.exit(2);
}
const mod = (await import(`./${name}.ts`)) as { default: (argv: string[]) => Promise<void> | void };
await mod.default(process.argv.slice(3));

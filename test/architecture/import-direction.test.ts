/**
 * The shape of the house: imports point one way along the data path. Walks every import of src/, protocol/ and
 * emulators/ and fails on a cycle between src/ folders, on protocol/ or emulators/ reaching into src/, and on
 * dockerode imported outside the engine runtimes (src/runtime/docker/, src/runtime/swarm/).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|(?:^|\n)\s*import\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Each file (relative to the root) with the specifiers it imports. */
function importsOf(files: string[]): Array<{ file: string; specifiers: string[] }> {
  return files.map((path) => {
    const text = readFileSync(path, 'utf8');
    const specifiers = [...text.matchAll(IMPORT)].map((m) => (m[1] ?? m[2] ?? m[3])!);
    return { file: relative(ROOT, path), specifiers };
  });
}

/** src/<folder> for a file under src/ (top-level files like config.ts are their own unit). */
function unitOf(file: string): string {
  const parts = file.split('/');
  return parts[0] === 'src' && parts.length > 2 ? `src/${parts[1]}` : file.replace(/\.ts$/, '');
}

function resolveLocal(from: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  return relative(ROOT, resolve(dirname(join(ROOT, from)), specifier)).replace(/\.js$/, '.ts');
}

/** Folder-level edges of src/: unit -> units it imports, with one example file each. */
function folderEdges(): Map<string, Map<string, string>> {
  const edges = new Map<string, Map<string, string>>();
  for (const { file, specifiers } of importsOf(sources(join(ROOT, 'src')))) {
    for (const s of specifiers) {
      const target = resolveLocal(file, s);
      if (!target?.startsWith('src/')) continue;
      const [a, b] = [unitOf(file), unitOf(target)];
      if (a === b) continue;
      if (!edges.has(a)) edges.set(a, new Map());
      edges.get(a)!.set(b, `${file} -> ${target}`);
    }
  }
  return edges;
}

function findCycle(edges: Map<string, Map<string, string>>): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    state.set(node, 'visiting');
    stack.push(node);
    for (const next of edges.get(node)?.keys() ?? []) {
      if (state.get(next) === 'visiting') return [...stack.slice(stack.indexOf(next)), next];
      if (!state.has(next)) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(node, 'done');
    return null;
  };
  for (const node of edges.keys()) {
    if (state.has(node)) continue;
    const found = visit(node);
    if (found) return found;
  }
  return null;
}

test('no two folders of src/ import each other, directly or around a loop', () => {
  const edges = folderEdges();
  const cycle = findCycle(edges);
  const how = cycle ? cycle.slice(1).map((to, i) => edges.get(cycle[i]!)!.get(to)).join('\n  ') : '';
  assert.is(cycle, null, cycle ? `folder cycle ${cycle.join(' -> ')}:\n  ${how}` : '');
});

test('the walker sees a planted cycle (it can fail)', () => {
  const edges = new Map([
    ['src/a', new Map([['src/b', 'a.ts -> b.ts']])],
    ['src/b', new Map([['src/c', 'b.ts -> c.ts']])],
    ['src/c', new Map([['src/a', 'c.ts -> a.ts']])],
  ]);
  assert.equal(findCycle(edges), ['src/a', 'src/b', 'src/c', 'src/a']);
});

test('the data path points down: nothing below the op contract imports the daemon or the CLI; only the CLI imports the composition root', () => {
  const edges = folderEdges();
  const upward: string[] = [];
  const below = ['src/ops', 'src/sessions', 'src/workflow', 'src/runtime', 'src/resources', 'src/client'];
  for (const from of below) {
    for (const [to, example] of edges.get(from) ?? []) if (to === 'src/daemon' || to === 'src/cli') upward.push(example);
  }
  for (const [from, targets] of edges) if (targets.has('src/compose') && from !== 'src/cli') upward.push(targets.get('src/compose')!);
  assert.equal(upward, []);
});

test('protocol/ and emulators/ stand alone: they import no src/ code; dockerode is imported only under src/runtime/docker/ and src/runtime/swarm/', () => {
  const strays: string[] = [];
  for (const dir of ['protocol', 'emulators']) {
    for (const { file, specifiers } of importsOf(sources(join(ROOT, dir)))) {
      for (const s of specifiers) if (resolveLocal(file, s)?.startsWith('src/')) strays.push(`${file} -> ${s}`);
    }
  }
  for (const { file, specifiers } of importsOf(sources(join(ROOT, 'src')))) {
    if (specifiers.includes('dockerode') && !/^src\/runtime\/(docker|swarm)\//.test(file)) strays.push(`${file} -> dockerode`);
  }
  assert.equal(strays, []);
});

/**
 * Where each part stands on the data path, top to bottom: an import must point to a lower rank. Top-level files
 * of src/ (config, log, scheduler) and protocol/ may be used by all.
 */
const RANK: Record<string, number> = {
  'src/cli': 9,
  'src/compose': 8,
  // observes the daemon's counters, registers an op, reads the session bus; built by compose
  'src/metrics': 7.5,
  'src/daemon': 7,
  'src/client': 7,
  'src/ops': 6,
  'src/sessions': 5,
  'src/resources': 4,
  'src/workflow': 4,
  'src/runtime': 3,
};

test('every import between src/ folders points down the data path (cli > compose > metrics > daemon > ops > sessions > workflow, resources > runtime)', () => {
  const upward: string[] = [];
  for (const [from, targets] of folderEdges()) {
    for (const [to, example] of targets) {
      const [a, b] = [RANK[from], RANK[to]];
      if (b === undefined) continue; // a shared top-level file of src/
      if (a === undefined || a <= b) upward.push(example);
    }
  }
  assert.equal(upward, []);
});

test('bench/ and support/ do not import test/', () => {
  const strays = importsOf([...sources(join(ROOT, 'bench')), ...sources(join(ROOT, 'support'))]).flatMap(({ file, specifiers }) => specifiers.filter((s) => resolveLocal(file, s)?.startsWith('test/')).map((s) => `${file} -> ${s}`));
  assert.equal(strays, []);
});

test.run();

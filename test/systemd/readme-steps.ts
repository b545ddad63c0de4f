/**
 * The install steps of README.md's "Running under systemd" section, read from the README itself so that the
 * tests under a real systemd run what operators are told to run, and fail when the two drift apart.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));
const SECTION = '## Running under systemd';
/** The first step is `cd <dir> && npm ci && <the rest>`: the checkout's directory, then what runs there. */
const BUILD_STEP = /^cd (\S+) && npm ci && (.+)$/;

export interface ReadmeSteps {
  /** Where the checkout lives (/opt/edgeecho). */
  dir: string;
  /** What follows `npm ci` in that directory: `npm run build && npm prune --omit=dev`. */
  build: string;
  /** sysusers, units and env file, run in `dir` as root. */
  install: string[];
  /** `systemctl daemon-reload && systemctl enable --now edgeecho.service`. */
  enable: string;
}

export function readmeSystemdSteps(text = readFileSync(README, 'utf8')): ReadmeSteps {
  const start = text.indexOf(SECTION);
  if (start < 0) throw new Error(`README.md has no "${SECTION}" section: test/systemd/readme-steps.ts reads the install steps from it`);
  // The first indented block of the section, one command per line, comments dropped.
  const lines = text.slice(start).split('\n').slice(1);
  const first = lines.findIndex((l) => l.startsWith('    '));
  const block: string[] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('    ')) break;
    block.push(line.replace(/\s+#.*$/, '').trim());
  }
  const build = BUILD_STEP.exec(block[0] ?? '');
  const enable = block.find((l) => l.includes('systemctl enable --now'));
  const install = block.slice(1).filter((l) => l.startsWith('install '));
  if (!build || !enable || install.length === 0) {
    throw new Error(`README.md "${SECTION}": expected "cd DIR && npm ci && ...", install lines and "systemctl enable --now", got:\n${block.join('\n')}`);
  }
  return { dir: build[1]!, build: build[2]!, install, enable };
}

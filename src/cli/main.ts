/**
 * The `edgeecho` dispatcher. Commands are entries in COMMANDS, each loaded lazily so `edgeecho cat` never
 * pays for the daemon's imports (dockerode, SQLite). Adding a command is one entry naming a module in this
 * folder that exports `run(argv, io)` (resolving with the exit code) and optionally `usage`.
 */
import { pathToFileURL } from 'node:url';
import { EdgeechoError } from '../../protocol/errors.js';
import { PACKAGE_VERSION, settingsTable } from '../config.js';
import { processIo, UsageError, type CliIo, type CommandModule } from './args.js';

export interface CommandEntry {
  /** One or more words: "cat", "session create". */
  name: string;
  summary: string;
  load(): Promise<CommandModule>;
}

/**
 * Loads `./<file>.js` through `load` (its `run`/`usage`, or the CommandModule exported as `name` when one file
 * holds several commands). `load` is a literal import() so esbuild puts the module in the bundle
 * (scripts/bundle.ts): a computed specifier would match only the .ts sources and leave the bundle without it.
 */
function moduleCommand(file: string, load: () => Promise<object>, name?: string): () => Promise<CommandModule> {
  return async () => {
    let mod: Record<string, unknown>;
    try {
      mod = (await load()) as Record<string, unknown>;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(`/cli/${file}.`)) {
        throw new EdgeechoError('NOT_FOUND', `this build has no src/cli/${file}.ts`);
      }
      throw err;
    }
    const command = (name ? mod[name] : mod) as CommandModule | undefined;
    if (typeof command?.run !== 'function') throw new EdgeechoError('INTERNAL', `src/cli/${file}.ts exports no command ${name ?? 'run'}`);
    return command;
  };
}

const DAEMON_USAGE = `usage: edgeecho daemon [--<setting> VALUE ...]

Runs the daemon in the foreground. Every setting below is read from its EDGEECHO_* variable and can be
overridden by its flag (see \`edgeecho config\`):

`;

export const COMMANDS: CommandEntry[] = [
  {
    name: 'daemon',
    summary: 'run the daemon in the foreground',
    load: async () => {
      const mod: { runDaemon(argv: string[]): Promise<number | void>; usage?: string } = await import('./daemon.js');
      return { run: (argv) => mod.runDaemon(argv), usage: mod.usage ?? DAEMON_USAGE + settingsTable() + '\n' };
    },
  },
  { name: 'cat', summary: 'send JSON requests from stdin, print every frame received as JSON', load: () => import('./cat.js') },
  { name: 'encode', summary: 'JSON lines on stdin -> frames on stdout', load: () => import('./encode.js') },
  { name: 'decode', summary: 'frames on stdin -> JSON lines on stdout', load: () => import('./decode.js') },
  { name: 'config', summary: 'print the settings table (env, flag, default, meaning) and the instance id', load: moduleCommand('config', () => import('./config.js')) },
  { name: 'images build', summary: 'build the emulator images', load: moduleCommand('images', () => import('./images.js')) },
  { name: 'session create', summary: 'create a stream session and follow its steps', load: moduleCommand('session', () => import('./session.js'), 'create') },
  { name: 'session ls', summary: 'list sessions', load: moduleCommand('session', () => import('./session.js'), 'ls') },
  { name: 'session get', summary: 'show one session', load: moduleCommand('session', () => import('./session.js'), 'get') },
  { name: 'session stop', summary: 'stop a session', load: moduleCommand('session', () => import('./session.js'), 'stop') },
  { name: 'session watch', summary: 'follow a session\'s status and events', load: moduleCommand('session', () => import('./session.js'), 'watch') },
  { name: 'consume', summary: 'read a session\'s stream: frames as JSON lines or --raw payload bytes, checked', load: () => import('./consume.js') },
  { name: 'resources', summary: 'show node capacity and what sessions hold', load: moduleCommand('resources', () => import('./resources.js')) },
  { name: 'metrics', summary: 'print the daemon\'s Prometheus metrics (the metrics op)', load: moduleCommand('metrics', () => import('./metrics.js')) },
  { name: 'health', summary: 'exit 0 when the daemon and its engine answer, 1 with the reason otherwise', load: moduleCommand('health', () => import('./health.js')) },
];

function overview(commands: CommandEntry[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return [
    `edgeecho ${PACKAGE_VERSION}: edge stream operator`,
    '',
    'usage: edgeecho <command> [flags]      edgeecho <command> --help',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
  ].join('\n');
}

/** Longest command name matching the leading words; the rest is the command's argv. */
function findCommand(argv: string[], commands: CommandEntry[]): { entry: CommandEntry; rest: string[] } | null {
  let best: { entry: CommandEntry; rest: string[] } | null = null;
  for (const entry of commands) {
    const words = entry.name.split(' ');
    if (words.every((w, i) => argv[i] === w) && (!best || words.length > best.entry.name.split(' ').length)) {
      best = { entry, rest: argv.slice(words.length) };
    }
  }
  return best;
}

const wantsHelp = (argv: string[]): boolean => {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
};

/** Runs one command line; resolves with the exit code, or undefined when the command keeps running. */
export async function main(argv: string[], io: CliIo = processIo(), commands: CommandEntry[] = COMMANDS): Promise<number | undefined> {
  const [first] = argv;
  if (first === undefined || first === '--help' || first === '-h' || (first === 'help' && argv.length === 1)) {
    (first === undefined ? io.stderr : io.stdout).write(overview(commands));
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === 'version') {
    io.stdout.write(PACKAGE_VERSION + '\n');
    return 0;
  }
  const helpFor = first === 'help';
  const words = helpFor ? argv.slice(1) : argv;
  const found = findCommand(words, commands);
  if (!found) {
    // "edgeecho session" alone: list the commands under that word.
    const group = commands.filter((c) => c.name.startsWith(words[0] + ' '));
    if (group.length) {
      const asked = helpFor || wantsHelp(words);
      (asked ? io.stdout : io.stderr).write(`usage: edgeecho ${words[0]} <${group.map((c) => c.name.split(' ')[1]).join('|')}> [flags]\n\n${overview(group).split('\n').slice(4).join('\n')}`);
      return asked ? 0 : 2;
    }
    io.stderr.write(`edgeecho: unknown command "${words.join(' ')}"\n\n${overview(commands)}`);
    return 2;
  }
  const { entry, rest } = found;
  let mod: CommandModule;
  try {
    mod = await entry.load();
  } catch (err) {
    io.stderr.write(`edgeecho ${entry.name}: not available: ${(err as Error).message}\n`);
    return 2;
  }
  if ((helpFor || wantsHelp(rest)) && mod.usage) {
    io.stdout.write(mod.usage);
    return 0;
  }
  try {
    const code = await mod.run(rest, io);
    return code ?? undefined;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`edgeecho ${entry.name}: ${err.message}\n${mod.usage ? '\n' + mod.usage : ''}`);
      return 2;
    }
    const message = err instanceof EdgeechoError ? `${err.code}: ${err.message}` : err instanceof Error ? (err.stack ?? err.message) : String(err);
    io.stderr.write(`edgeecho ${entry.name}: ${message}\n`);
    return 1;
  }
}

/** Exits only once stdout and stderr have taken everything written, so piped output is never cut short. */
async function exitAfterFlush(code: number): Promise<void> {
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.write('', () => resolve()))));
  process.exit(code);
}

/** The process entry: runs the command, then exits with its code once output is flushed. */
export async function runCli(argv: string[]): Promise<void> {
  // A reader that goes away (`edgeecho decode < f | head`) is a normal end, not a crash.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
  const code = await main(argv);
  if (code !== undefined) await exitAfterFlush(code);
}

// Run directly (`node --import tsx src/cli/main.ts`, or the systemd unit's dist/edgeecho.mjs bundle); bin/edgeecho.js
// calls runCli itself, whatever path npx or a symlink gives it; imported by tests, this module stays quiet.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await runCli(process.argv.slice(2));

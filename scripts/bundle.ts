/**
 * The production build of the CLI and daemon: src/cli/main.ts bundled by esbuild into one ESM file,
 * dist/edgeecho.mjs, which bin/edgeecho.js and systemd/edgeecho.service run. Run by `npm run build` after tsc
 * (whose dist/ output the package exports still serve). Why a bundle: Node loads one file instead of hundreds,
 * and the transports dockerode pulls in at require time but edgeecho never uses (ssh2 for ssh:// hosts, gRPC
 * and protobuf for BuildKit sessions) are replaced by stubs, which is most of the daemon's idle RSS above bare
 * Node. Usage: `node --import tsx scripts/bundle.ts [outfile]`.
 */
import { build, type Plugin } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE_FILE = join(root, 'dist', 'edgeecho.mjs');

/** Packages replaced by a stub, and why edgeecho never calls them. */
export const OMITTED: Record<string, string> = {
  ssh2: 'DOCKER_HOST=ssh:// is not supported; edgeecho talks to the engine over a unix socket (EDGEECHO_DOCKER_SOCKET)',
  '@grpc/grpc-js': "BuildKit sessions (buildImage with version '2') are not used; the emulator images use the classic builder",
  '@grpc/proto-loader': "BuildKit sessions (buildImage with version '2') are not used; the emulator images use the classic builder",
  protobufjs: 'BuildKit progress decoding is not used; the emulator images use the classic builder',
};

/**
 * Left as imports resolved from node_modules at run time: better-sqlite3 is a native addon; esbuild is loaded
 * only to build the emulator images and carries its own binary; msgpackr-extract is msgpackr's optional native
 * decoder, absent here (its install script is not allowed), which msgpackr looks for in a try/catch.
 */
const EXTERNAL = ['better-sqlite3', 'esbuild', 'msgpackr-extract'];

/**
 * Each omitted package becomes a module whose every export throws, naming the package and the reason, when
 * called or constructed; merely loading it (docker-modem requires ssh2 at its top level) costs nothing.
 */
export const omitPlugin: Plugin = {
  name: 'edgeecho-omit',
  setup(b) {
    const names = Object.keys(OMITTED).map((n) => n.replace(/[/.]/g, '\\$&'));
    b.onResolve({ filter: new RegExp(`^(${names.join('|')})$`) }, (args) => ({ path: args.path, namespace: 'edgeecho-omitted' }));
    b.onLoad({ filter: /.*/, namespace: 'edgeecho-omitted' }, (args) => ({
      loader: 'js',
      contents: `const message = ${JSON.stringify(`edgeecho's bundle omits ${args.path}: ${OMITTED[args.path]}`)};
function omitted() { throw new Error(message); }
module.exports = new Proxy({}, {
  get: (_, key) => (typeof key === 'symbol' || key === '__esModule' || key === 'then' ? undefined : omitted),
});
`,
    }));
  },
};

/**
 * CommonJS dependencies call require(), which ESM lacks. pino runs pino-pretty (a TTY's log transport) in a
 * worker thread whose entry file it finds beside its own sources (__dirname), which a bundle does not have:
 * pino and thread-stream read __bundlerPathsOverrides for exactly this, so point them at the installed files
 * (resolved only when a transport starts).
 */
const BANNER = `import { createRequire as __edgeechoCreateRequire } from 'node:module';
const require = __edgeechoCreateRequire(import.meta.url);
globalThis.__bundlerPathsOverrides = {
  get 'thread-stream-worker'() { return __edgeechoCreateRequire(require.resolve('pino')).resolve('thread-stream/lib/worker.js'); },
  get 'pino-worker'() { return require.resolve('pino/lib/worker.js'); },
};
`;

export async function bundle(outfile = BUNDLE_FILE): Promise<string> {
  await build({
    entryPoints: [join(root, 'src', 'cli', 'main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: EXTERNAL,
    plugins: [omitPlugin],
    banner: { js: BANNER },
    legalComments: 'none',
    logLevel: 'warning',
  });
  return outfile;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = await bundle(process.argv[2]);
  process.stdout.write(`bundled ${out}\n`);
}

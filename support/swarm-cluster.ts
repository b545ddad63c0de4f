/**
 * Worker nodes for the host's Swarm on one machine, for the swarm runtime's multi-node tests and benches. A node
 * is a container of an image `docker import`ed from the host's own engine binaries (dockerd, containerd, the runc
 * shim, runc, tini as docker-init, docker-proxy, xtables-nft-multi as iptables, the static docker CLI) and the
 * libraries `ldd` lists; it runs an inner dockerd on overlay2 and joins the host's swarm as a worker.
 *
 * These engines refuse `--privileged` (CAP_SYS_RESOURCE is not in the bounding set), so a node gets every other
 * capability, no seccomp/apparmor/masked paths, the host's /sys/fs/cgroup read-write (the cgroup v1 mount of a
 * non-privileged container is read-only) and an anonymous volume on /var/lib/docker (overlay2 cannot stack on the
 * container's own overlay root).
 *
 * Everything is labelled `io.edgeecho.test-cluster=<id>` with the owning pid beside it, containers and swarm nodes
 * alike, so `removeClusterLeftovers` can remove what a crashed run left without touching a live run's nodes.
 * The host engine is left as found: the fixture never inits, leaves or restarts the host's swarm.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, readdirSync, readFileSync, realpathSync, rmdirSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './daemon-process.js';

const run = promisify(execFile);

export const CLUSTER_LABEL = 'io.edgeecho.test-cluster';
/** Pid of the process that made the cluster: its leftovers are fair game once that process is gone. */
export const CLUSTER_OWNER_LABEL = 'io.edgeecho.test-cluster.owner';
export const NODE_IMAGE_REPO = 'edgeecho-swarm-node';
/** On the node image, with its content hash as value: `docker images --filter label=...` lists every one built. */
export const NODE_IMAGE_LABEL = 'io.edgeecho.swarm-node-image';
/** Container names and swarm hostnames: edgeecho-swarm-<cluster id>-<n>. */
export const NODE_NAME_PREFIX = 'edgeecho-swarm-';
/** Subnets of a node's own bridges (docker0, docker_gwbridge): apart from the host's 172.17/16 the node sits on. */
export const DEFAULT_NODE_ADDRESS_POOL = '10.215.0.0/16';
/** Bumped when the rootfs layout changes without any source file changing. */
const NODE_IMAGE_FORMAT = 'edgeecho-swarm-node/1';

/** docker run to the inner engine answering: 0.4-1.9 s measured, 4.8 s while other suites loaded the machine. */
export const DEFAULT_ENGINE_START_TIMEOUT_MS = 30_000;
/** join to Ready on the manager: 0.2-0.9 s measured (1.7 s once under load). */
export const DEFAULT_JOIN_TIMEOUT_MS = 30_000;
/** A node whose engine died is Down on the manager 10.2-14 s later here (heartbeat period 5 s plus its grace). */
export const DEFAULT_NODE_DOWN_TIMEOUT_MS = 45_000;
/** One image of ~100 MB saved and loaded: 1.3-3.4 s measured. */
export const DEFAULT_IMAGE_LOAD_TIMEOUT_MS = 180_000;
/** Any single docker CLI call that is not a wait. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;

/** Host binaries the node needs, by their name in the node's /usr/bin and the host names to look for. */
const NODE_BINARIES: Array<{ as: string; names: string[] }> = [
  { as: 'dockerd', names: ['dockerd'] },
  { as: 'containerd', names: ['containerd'] },
  { as: 'containerd-shim-runc-v2', names: ['containerd-shim-runc-v2'] },
  { as: 'runc', names: ['runc'] },
  { as: 'docker-init', names: ['docker-init', 'tini-static', 'tini'] },
  { as: 'docker-proxy', names: ['docker-proxy'] },
  { as: 'xtables-nft-multi', names: ['xtables-nft-multi'] },
  { as: 'docker', names: ['docker'] },
];
const XTABLES_LINKS = ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore'];
const HOST_BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export interface SwarmNode {
  /** Container name, also its hostname and so its swarm hostname. */
  name: string;
  containerId: string;
  /** The node container's address on the host's default bridge: where host-mode published ports answer. */
  ip: string;
  /** Its swarm node id, for `node.id==` constraints and `docker node` commands on the manager. */
  nodeId: string;
}

export interface ClusterTiming {
  step: 'node-image' | 'engine-start' | 'join' | 'image-load' | 'engine-down';
  node?: string;
  detail?: string;
  ms: number;
}

export interface SwarmClusterOptions {
  /** Default: 8 random hex characters. */
  id?: string;
  /** host:port the workers join; default the host manager's own address from `docker info`. */
  managerAddress?: string;
  nodeAddressPool?: string;
  engineStartTimeoutMs?: number;
  joinTimeoutMs?: number;
  commandTimeoutMs?: number;
}

interface CommandOptions {
  timeoutMs?: number;
  input?: string;
}

async function docker(args: string[], options: CommandOptions = {}): Promise<string> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  try {
    const child = run('docker', args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 });
    if (options.input !== undefined) child.child.stdin!.end(options.input);
    const { stdout } = await child;
    return stdout.trim();
  } catch (err) {
    const e = err as Error & { stderr?: string; killed?: boolean };
    const why = e.killed ? `killed after ${timeoutMs} ms` : (e.stderr?.trim() || e.message);
    throw new Error(`docker ${args.join(' ')}: ${why}`, { cause: err });
  }
}

function findHostBinary(names: string[]): string {
  for (const name of names) {
    for (const dir of [...(process.env.PATH ?? '').split(':').filter(Boolean), ...HOST_BIN_DIRS]) {
      const path = join(dir, name);
      try {
        if (statSync(path).isFile()) return path;
      } catch {
        // not here
      }
    }
  }
  throw new Error(`swarm node image: none of ${names.join(', ')} found on PATH or in ${HOST_BIN_DIRS.join(':')}; the node needs the host's engine binaries`);
}

/** Libraries `ldd` resolves for these files, in one call (none for a static binary). */
async function librariesOf(paths: string[]): Promise<string[]> {
  let output: string;
  try {
    output = (await run('ldd', paths, { maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    // ldd exits 1 when any of them is static ("not a dynamic executable") but still lists the others
    const e = err as { stdout?: string; stderr?: string };
    output = `${e.stdout ?? ''}\n${e.stderr ?? ''}`;
    if (!/not a dynamic executable|statically linked/.test(output)) throw err;
  }
  const libs = new Set<string>();
  for (const line of output.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) libs.add(m[1]!);
    else if (/not found/.test(line)) throw new Error(`ldd ${paths.join(' ')}: ${line.trim()}`);
  }
  return [...libs];
}

type RootfsEntry =
  | { path: string; kind: 'file'; source: string; mode: number }
  | { path: string; kind: 'text'; text: string; mode: number }
  | { path: string; kind: 'symlink'; target: string }
  | { path: string; kind: 'dir'; mode: number };

/** What the node's rootfs holds, every path absolute in the node. */
async function nodeRootfs(): Promise<RootfsEntry[]> {
  const entries: RootfsEntry[] = [];
  const libraries = new Set<string>();
  let xtables: string | undefined;
  const binaries = NODE_BINARIES.map(({ as, names }) => ({ as, source: findHostBinary(names) }));
  for (const { as, source } of binaries) entries.push({ path: `/usr/bin/${as}`, kind: 'file', source, mode: 0o755 });
  for (const lib of await librariesOf(binaries.map((b) => b.source))) {
    libraries.add(lib);
    if (basename(lib).startsWith('libxtables.so')) xtables = join(dirname(lib), 'xtables');
  }
  // iptables loads its match and target extensions (RETURN among them) with dlopen from the dir it was built
  // with, which ldd cannot see: the real path, as /lib may be a link to /usr/lib on the host but not in the node.
  if (xtables && existsSync(xtables)) {
    xtables = realpathSync(xtables);
    const extensions = readdirSync(xtables).filter((name) => name.endsWith('.so')).sort().map((name) => join(xtables!, name));
    for (const source of extensions) entries.push({ path: source, kind: 'file', source, mode: 0o644 });
    for (const lib of await librariesOf(extensions)) libraries.add(lib);
  }
  for (const lib of [...libraries].sort()) entries.push({ path: lib, kind: 'file', source: lib, mode: 0o755 });
  for (const link of XTABLES_LINKS) entries.push({ path: `/usr/bin/${link}`, kind: 'symlink', target: 'xtables-nft-multi' });
  entries.push(
    { path: '/bin', kind: 'symlink', target: 'usr/bin' },
    { path: '/sbin', kind: 'symlink', target: 'usr/bin' },
    { path: '/usr/sbin', kind: 'symlink', target: 'bin' },
    { path: '/var/run', kind: 'symlink', target: '../run' },
    { path: '/etc/passwd', kind: 'text', text: 'root:x:0:0:root:/root:/usr/bin/nologin\n', mode: 0o644 },
    // dockerd gives its socket to group docker when that group exists; root is the only user here anyway.
    { path: '/etc/group', kind: 'text', text: 'root:x:0:\ndocker:x:999:\n', mode: 0o644 },
    { path: '/etc/nsswitch.conf', kind: 'text', text: 'hosts: files dns\n', mode: 0o644 },
    { path: '/usr/lib/os-release', kind: 'text', text: 'NAME="edgeecho swarm node"\nID=edgeecho-swarm-node\n', mode: 0o644 },
    { path: '/etc/os-release', kind: 'symlink', target: '../usr/lib/os-release' },
    // docker run mounts its own hosts, hostname and resolv.conf over these.
    { path: '/etc/hosts', kind: 'text', text: '', mode: 0o644 },
    { path: '/etc/hostname', kind: 'text', text: '', mode: 0o644 },
    { path: '/etc/resolv.conf', kind: 'text', text: '', mode: 0o644 },
    // dockerd runs `modprobe` for br_netfilter, overlay and the like and only warns when it fails; the kernel
    // modules a node needs are the host's, loaded already, so a missing modprobe is the intended answer.
    { path: '/tmp', kind: 'dir', mode: 0o1777 },
    { path: '/run', kind: 'dir', mode: 0o755 },
    { path: '/root', kind: 'dir', mode: 0o700 },
    { path: '/var/lib/docker', kind: 'dir', mode: 0o711 },
    { path: '/proc', kind: 'dir', mode: 0o555 },
    { path: '/sys', kind: 'dir', mode: 0o555 },
    { path: '/dev', kind: 'dir', mode: 0o755 },
  );
  // Registry and TLS trust (a node pulling from a registry of the operator's): the host's CA dirs as they are.
  for (const dir of ['/etc/ssl/certs', '/etc/pki/tls/certs', '/etc/ca-certificates']) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const source = join(dir, name);
      try {
        if (statSync(source).isFile()) entries.push({ path: source, kind: 'file', source, mode: 0o644 });
      } catch {
        // a dangling link
      }
    }
  }
  return entries;
}

const NODE_IMAGE_CHANGES = [
  `ENTRYPOINT ["/usr/bin/docker-init", "--", "/usr/bin/dockerd"]`,
  'ENV PATH=/usr/bin',
];

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Content hash of the rootfs and the image config: the same host engine gives the same tag. */
async function rootfsHash(entries: RootfsEntry[]): Promise<string> {
  const hash = createHash('sha256').update(`${NODE_IMAGE_FORMAT}\n${NODE_IMAGE_CHANGES.join('\n')}\n`);
  for (const entry of [...entries].sort((a, b) => a.path.localeCompare(b.path))) {
    const body = entry.kind === 'file' ? `${entry.mode.toString(8)} ${await fileDigest(entry.source)}`
      : entry.kind === 'text' ? `${entry.mode.toString(8)} ${createHash('sha256').update(entry.text).digest('hex')}`
      : entry.kind === 'symlink' ? entry.target
      : entry.mode.toString(8);
    hash.update(`${entry.kind} ${entry.path} ${body}\n`);
  }
  return hash.digest('hex').slice(0, 16);
}

async function stage(entries: RootfsEntry[], root: string): Promise<void> {
  for (const entry of entries) {
    const target = join(root, entry.path);
    await mkdir(dirname(target), { recursive: true });
    if (entry.kind === 'dir') await mkdir(target, { recursive: true });
    else if (entry.kind === 'symlink') await symlink(entry.target, target);
    else if (entry.kind === 'text') await writeFile(target, entry.text);
    else await copyFile(entry.source, target);
    if (entry.kind !== 'symlink') await chmod(target, entry.mode);
  }
}

async function imageExists(ref: string): Promise<boolean> {
  try {
    await docker(['image', 'inspect', '--format', '{{.Id}}', ref]);
    return true;
  } catch {
    return false;
  }
}

let nodeImageBuild: Promise<{ image: string; built: boolean; ms: number }> | undefined;

/**
 * The node image for this host's engine, `edgeecho-swarm-node:<content hash>`, imported once and then found by
 * its tag (also by later runs: the hash changes only when the host's binaries or the layout do).
 */
export function ensureNodeImage(): Promise<{ image: string; built: boolean; ms: number }> {
  nodeImageBuild ??= (async () => {
    const started = Date.now();
    const entries = await nodeRootfs();
    const hash = await rootfsHash(entries);
    const image = `${NODE_IMAGE_REPO}:${hash}`;
    if (await imageExists(image)) return { image, built: false, ms: Date.now() - started };
    const staging = await mkdtemp(join(tmpdir(), 'edgeecho-swarm-node-'));
    try {
      const root = join(staging, 'rootfs');
      await stage(entries, root);
      const changes = [...NODE_IMAGE_CHANGES, `LABEL ${NODE_IMAGE_LABEL}=${hash}`].flatMap((c) => ['--change', c]);
      await pipeline(
        ['tar', ['-c', '--numeric-owner', '--owner=0', '--group=0', '-C', root, '.']],
        ['docker', ['import', ...changes, '-', image]],
        DEFAULT_IMAGE_LOAD_TIMEOUT_MS,
      );
      if (!(await imageExists(image))) throw new Error(`docker import of ${image} reported success but the image is absent`);
      return { image, built: true, ms: Date.now() - started };
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  })();
  nodeImageBuild.catch(() => (nodeImageBuild = undefined));
  return nodeImageBuild;
}

/** `a | b`, both killed when the pair outlives `timeoutMs`; rejects with the failing side's stderr. */
function pipeline(a: [string, string[]], b: [string, string[]], timeoutMs: number): Promise<void> {
  const left = spawn(a[0], a[1], { stdio: ['ignore', 'pipe', 'pipe'] });
  const right = spawn(b[0], b[1], { stdio: ['pipe', 'pipe', 'pipe'] });
  left.stdout.pipe(right.stdin);
  // the reader dying first must not crash the writer with EPIPE; its own exit code reports it
  right.stdin.on('error', () => undefined);
  const timer = setTimeout(() => {
    left.kill('SIGKILL');
    right.kill('SIGKILL');
  }, timeoutMs);
  const done = (child: ReturnType<typeof spawn>, argv: [string, string[]]): Promise<void> => {
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.resume();
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (code === 0) resolve();
        else reject(new Error(`${argv[0]} ${argv[1].slice(0, 4).join(' ')}... exited ${code ?? signal}${signal === 'SIGKILL' ? ` (killed after ${timeoutMs} ms)` : ''}: ${stderr.trim()}`));
      });
    });
  };
  left.stdout.on('error', () => undefined);
  const both = Promise.all([done(left, a).catch((err) => { right.kill('SIGKILL'); throw err; }), done(right, b)]);
  return both.then(() => undefined).finally(() => clearTimeout(timer));
}

interface HostSwarm {
  nodeId: string;
  managerAddress: string;
}

async function hostSwarm(): Promise<HostSwarm> {
  const info = JSON.parse(await docker(['info', '--format', '{{json .Swarm}}'])) as {
    NodeID?: string;
    LocalNodeState?: string;
    ControlAvailable?: boolean;
    NodeAddr?: string;
    RemoteManagers?: Array<{ NodeID: string; Addr: string }> | null;
  };
  if (info.LocalNodeState !== 'active' || !info.ControlAvailable) {
    throw new Error(`swarm cluster: the host engine must be a swarm manager (LocalNodeState=${info.LocalNodeState}, ControlAvailable=${info.ControlAvailable}); the fixture never runs \`docker swarm init\` itself`);
  }
  const self = info.RemoteManagers?.find((m) => m.NodeID === info.NodeID);
  return { nodeId: info.NodeID!, managerAddress: self?.Addr ?? `${info.NodeAddr}:2377` };
}

function cgroupRoots(): string[] {
  const base = '/sys/fs/cgroup';
  try {
    // cgroup v1: one hierarchy per dir (cpu,cpuacct and friends are links to them); v2: the base itself
    return [base, ...readdirSync(base).map((n) => join(base, n)).filter((p) => !lstatSync(p).isSymbolicLink() && lstatSync(p).isDirectory())];
  } catch {
    return [];
  }
}

/** The node's cgroup parent in every hierarchy, deepest first; empty once the node's processes are gone. */
function removeNodeCgroups(name: string): void {
  const remove = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) remove(join(dir, entry.name));
    rmdirSync(dir);
  };
  for (const root of cgroupRoots()) {
    const dir = join(root, name);
    if (!existsSync(dir)) continue;
    try {
      remove(dir);
    } catch {
      // still busy or not ours to remove (a rootless or remote engine): an empty cgroup dir costs nothing
    }
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class SwarmCluster {
  readonly id: string;
  readonly nodes: SwarmNode[] = [];
  readonly timings: ClusterTiming[] = [];
  /** Containers made, joined or not: what stop() removes. */
  private readonly containers = new Set<string>();
  private readonly options: SwarmClusterOptions;
  private next = 1;

  constructor(options: SwarmClusterOptions = {}) {
    this.options = options;
    this.id = options.id ?? randomBytes(4).toString('hex');
  }

  private labels(): string[] {
    return ['--label', `${CLUSTER_LABEL}=${this.id}`, '--label', `${CLUSTER_OWNER_LABEL}=${process.pid}`];
  }

  /** Starts `count` more nodes and joins each to the host's swarm as a worker; resolves once all are Ready. */
  async start(count: number): Promise<SwarmNode[]> {
    const host = await hostSwarm();
    const managerAddress = this.options.managerAddress ?? host.managerAddress;
    const token = await docker(['swarm', 'join-token', '-q', 'worker']);
    const built = await ensureNodeImage();
    this.timings.push({ step: 'node-image', detail: `${built.image}${built.built ? ' built' : ' cached'}`, ms: built.ms });
    const names = Array.from({ length: count }, () => `${NODE_NAME_PREFIX}${this.id}-${this.next++}`);
    const started = await Promise.all(names.map((name) => this.startNode(name, built.image, managerAddress, token)));
    this.nodes.push(...started);
    return started;
  }

  private async startNode(name: string, image: string, managerAddress: string, token: string): Promise<SwarmNode> {
    const engineStarted = Date.now();
    this.containers.add(name);
    const containerId = await docker([
      'run', '--detach', '--name', name, '--hostname', name, ...this.labels(),
      '--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE',
      '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined', '--security-opt', 'systempaths=unconfined',
      '--volume', '/sys/fs/cgroup:/sys/fs/cgroup:rw', '--volume', '/var/lib/docker',
      // images arrive by loadImages, not a registry: without this each task first tries to pull its tag from
      // Docker Hub (about a second per task offline, and whoever owns that name there would run)
      '--env', 'DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1',
      image,
      '--storage-driver', 'overlay2',
      // its own parent in the host's hierarchies (bound in whole), so stop() can find and remove what it made
      '--cgroup-parent', `/${name}`,
      '--default-address-pool', `base=${this.options.nodeAddressPool ?? DEFAULT_NODE_ADDRESS_POOL},size=24`,
    ]);
    const engineTimeout = this.options.engineStartTimeoutMs ?? DEFAULT_ENGINE_START_TIMEOUT_MS;
    try {
      await waitFor(`inner engine of ${name} answering`, async () => {
        const state = await docker(['inspect', '--format', '{{.State.Status}}', name]);
        if (state !== 'running') throw new Error(`node container is ${state}`);
        return (await docker(['exec', name, 'docker', 'version', '--format', '{{.Server.Version}}'], { timeoutMs: 5_000 })) || undefined;
      }, engineTimeout);
    } catch (err) {
      throw new Error(`${(err as Error).message}\ninner dockerd log tail:\n${await this.logTail(name)}`);
    }
    this.timings.push({ step: 'engine-start', node: name, ms: Date.now() - engineStarted });
    const ip = await docker(['inspect', '--format', '{{.NetworkSettings.IPAddress}}', name]);
    const joinStarted = Date.now();
    await docker(['exec', name, 'docker', 'swarm', 'join', '--token', token, '--advertise-addr', ip, managerAddress], {
      timeoutMs: this.options.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS,
    });
    const nodeId = await docker(['exec', name, 'docker', 'info', '--format', '{{.Swarm.NodeID}}']);
    await docker(['node', 'update', ...this.labels().map((a) => (a === '--label' ? '--label-add' : a)), nodeId]);
    await this.waitForNodeState({ name, nodeId }, 'ready', this.options.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS);
    this.timings.push({ step: 'join', node: name, ms: Date.now() - joinStarted });
    return { name, containerId, ip, nodeId };
  }

  private async logTail(name: string): Promise<string> {
    try {
      const { stdout, stderr } = await run('docker', ['logs', '--tail', '20', name], { timeout: 10_000 });
      return `${stdout}${stderr}`.trim();
    } catch (err) {
      return `(no log: ${(err as Error).message})`;
    }
  }

  /** The node's state as the manager sees it: ready, down, unknown, disconnected. */
  async nodeState(node: Pick<SwarmNode, 'nodeId'>): Promise<{ state: string; availability: string }> {
    const [state, availability] = (await docker(['node', 'inspect', '--format', '{{.Status.State}} {{.Spec.Availability}}', node.nodeId])).split(' ');
    return { state: state!, availability: availability! };
  }

  /** Resolves with the ms it took the manager to report `state`; throws past `timeoutMs`. */
  async waitForNodeState(node: Pick<SwarmNode, 'nodeId' | 'name'>, state: 'ready' | 'down', timeoutMs: number): Promise<number> {
    const started = Date.now();
    await waitFor(`swarm node ${node.name} (${node.nodeId}) ${state}`, async () => {
      const seen = await this.nodeState(node);
      if (seen.state === state) return true;
      throw new Error(`state ${seen.state}`);
    }, timeoutMs);
    return Date.now() - started;
  }

  /** `docker save | docker exec -i NODE docker load`, node by node (all nodes when omitted). */
  async loadImages(images: string[], nodes: SwarmNode[] = this.nodes): Promise<void> {
    for (const node of nodes) {
      const started = Date.now();
      await pipeline(['docker', ['save', ...images]], ['docker', ['exec', '-i', node.name, 'docker', 'load', '--quiet']], DEFAULT_IMAGE_LOAD_TIMEOUT_MS);
      this.timings.push({ step: 'image-load', node: node.name, detail: images.join(' '), ms: Date.now() - started });
    }
  }

  /**
   * SIGKILLs the node's inner dockerd, as a crashed engine: docker-init exits with it and takes containerd and
   * the node's tasks along, and the manager marks the node down after its heartbeat grace (see waitForNodeState).
   */
  async killEngine(node: SwarmNode): Promise<void> {
    const top = await docker(['top', node.name, '-eo', 'pid,comm']);
    const pid = top.split('\n').slice(1).map((l) => l.trim().split(/\s+/)).find(([, comm]) => comm === 'dockerd')?.[0];
    // docker top reports pids of the engine's namespace: kill one only when it is visibly that dockerd in this one
    // (the same comm and the node's cgroup), else let the engine kill the whole node.
    const own = pid !== undefined && this.isNodeProcess(Number(pid), node, 'dockerd');
    if (own) process.kill(Number(pid), 'SIGKILL');
    else await docker(['kill', '--signal', 'KILL', node.name]);
    await waitFor(`node container ${node.name} stopped after its engine was killed`, async () => {
      return (await docker(['inspect', '--format', '{{.State.Running}}', node.name])) === 'false' ? true : undefined;
    }, DEFAULT_COMMAND_TIMEOUT_MS);
  }

  private isNodeProcess(pid: number, node: SwarmNode, comm: string): boolean {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm && readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(node.containerId);
    } catch {
      return false;
    }
  }

  async drain(node: SwarmNode): Promise<void> {
    await docker(['node', 'update', '--availability', 'drain', node.nodeId]);
  }

  async activate(node: SwarmNode): Promise<void> {
    await docker(['node', 'update', '--availability', 'active', node.nodeId]);
  }

  /**
   * Removes every node of this cluster from the swarm, then its container and volumes and cgroups. Goes on past
   * failures and throws them together at the end, so one stuck node does not leave the others behind.
   */
  async stop(): Promise<void> {
    const failures: string[] = [];
    const nodeIds = new Set(this.nodes.map((n) => n.nodeId));
    try {
      for (const id of await swarmNodesOf((labels, hostname) => labels[CLUSTER_LABEL] === this.id || this.containers.has(hostname))) nodeIds.add(id);
    } catch (err) {
      failures.push((err as Error).message);
    }
    for (const id of nodeIds) {
      try {
        await docker(['node', 'rm', '--force', id]);
      } catch (err) {
        if (!/not found/i.test((err as Error).message)) failures.push((err as Error).message);
      }
    }
    for (const name of this.containers) {
      try {
        await docker(['rm', '--force', '--volumes', name]);
      } catch (err) {
        if (!/No such container/i.test((err as Error).message)) failures.push((err as Error).message);
      }
      removeNodeCgroups(name);
    }
    this.nodes.length = 0;
    this.containers.clear();
    if (failures.length > 0) throw new Error(`swarm cluster ${this.id}: stop left something behind:\n${failures.join('\n')}`);
  }
}

/** Swarm node ids whose labels or hostname match. */
async function swarmNodesOf(match: (labels: Record<string, string>, hostname: string) => boolean): Promise<string[]> {
  const ids = (await docker(['node', 'ls', '--quiet'])).split('\n').filter(Boolean);
  if (ids.length === 0) return [];
  const nodes = JSON.parse(await docker(['node', 'inspect', ...ids])) as Array<{ ID: string; Spec: { Labels?: Record<string, string> }; Description: { Hostname: string } }>;
  return nodes.filter((n) => match(n.Spec.Labels ?? {}, n.Description.Hostname)).map((n) => n.ID);
}

/** What exists now of any cluster (or of the given one): containers, volumes of those containers, swarm nodes. */
export async function clusterObjects(id?: string): Promise<{ containers: string[]; nodes: string[] }> {
  const filter = id ? `${CLUSTER_LABEL}=${id}` : CLUSTER_LABEL;
  // the owner label tells node containers from anything else a test labelled with its cluster (service tasks)
  const containers = (await docker(['ps', '--all', '--filter', `label=${filter}`, '--filter', `label=${CLUSTER_OWNER_LABEL}`, '--format', '{{.Names}}'])).split('\n').filter(Boolean);
  const nodes = await swarmNodesOf((labels, hostname) => (id ? labels[CLUSTER_LABEL] === id || hostname.startsWith(`${NODE_NAME_PREFIX}${id}-`) : CLUSTER_LABEL in labels));
  return { containers, nodes };
}

/**
 * Removes the nodes of clusters whose owning process is gone (a run killed before its stop()): their swarm
 * nodes, containers, anonymous volumes and cgroups. Clusters of live processes are left alone. Returns what it removed.
 */
export async function removeClusterLeftovers(): Promise<string[]> {
  const rows = (await docker(['ps', '--all', '--filter', `label=${CLUSTER_LABEL}`, '--filter', `label=${CLUSTER_OWNER_LABEL}`, '--format', `{{.Names}} {{.Label "${CLUSTER_LABEL}"}} {{.Label "${CLUSTER_OWNER_LABEL}"}}`]))
    .split('\n').filter(Boolean).map((line) => line.split(' ') as [string, string, string]);
  const dead = new Set(rows.filter(([, , owner]) => !isAlive(Number(owner))).map(([, id]) => id));
  const nodes = await swarmNodesOf((labels, hostname) => {
    const owner = labels[CLUSTER_OWNER_LABEL];
    if (owner !== undefined) return !isAlive(Number(owner));
    return [...dead].some((id) => hostname.startsWith(`${NODE_NAME_PREFIX}${id}-`));
  });
  const removed: string[] = [];
  for (const id of nodes) {
    await docker(['node', 'rm', '--force', id]);
    removed.push(`swarm node ${id}`);
  }
  for (const [name, id] of rows) {
    if (!dead.has(id)) continue;
    await docker(['rm', '--force', '--volumes', name]);
    removeNodeCgroups(name);
    removed.push(`container ${name}`);
  }
  return removed;
}

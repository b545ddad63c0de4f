/**
 * Listeners: where connections come from. The daemon only sees `Listener`s, so a TLS server or sockets passed
 * by systemd (LISTEN_FDS) plug in as one more factory here (`serverListener` takes any net.Server-like source)
 * without touching the connection or the daemon.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { chmod, chown, lstat, readFile, unlink } from 'node:fs/promises';
import { EdgeechoError } from '../../protocol/errors.js';

/** Who is on the other end, as the auth hook and the logs see it. */
export interface Peer {
  /** The listener it came through: 'tcp', 'unix', later 'tls' or 'systemd'. */
  transport: string;
  /** Remote IP for TCP/TLS; 'local' for a unix socket. */
  address: string;
  port?: number;
  /** address:port or transport name, for logs. */
  label: string;
}

/** What a listener reports once bound: a TCP address or a unix socket path. */
export type ListenAddress = { host: string; port: number } | { path: string };

export interface Listener {
  readonly name: string;
  /** Binds and starts handing connections to onConnection. */
  open(onConnection: (socket: Socket, peer: Peer) => void): Promise<ListenAddress>;
  /** Stops accepting; connections already handed over are not touched. */
  close(): Promise<void>;
}

/** The parts of net.Server (or tls.Server) a listener uses. */
export interface ServerLike {
  on(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
  close(cb?: (err?: Error) => void): unknown;
  address(): ReturnType<Server['address']>;
  readonly listening: boolean;
}

export interface ServerListenerOptions {
  name: string;
  /** Transport name reported in Peer.transport. */
  transport: string;
  server: ServerLike;
  /** Starts listening (e.g. server.listen(port, host) or server.listen({fd})); resolves once bound. */
  bind(server: ServerLike): Promise<void>;
  /** 'connection' for net.Server, 'secureConnection' for tls.Server. */
  connectionEvent?: string;
  /** Called after close (e.g. to remove a socket file). */
  afterClose?(): Promise<void>;
}

/** A Listener around any net.Server-like source. */
export function serverListener(options: ServerListenerOptions): Listener {
  const event = options.connectionEvent ?? 'connection';
  let handler: ((socket: Socket) => void) | null = null;
  return {
    name: options.name,
    async open(onConnection) {
      handler = (socket: Socket) => onConnection(socket, peerOf(socket, options.transport));
      options.server.on(event, handler);
      await options.bind(options.server);
      return addressOf(options.server);
    },
    async close() {
      if (handler) options.server.removeListener(event, handler);
      if (options.server.listening) {
        await new Promise<void>((resolve) => options.server.close(() => resolve()));
      }
      await options.afterClose?.();
    },
  };
}

function peerOf(socket: Socket, transport: string): Peer {
  const address = socket.remoteAddress;
  if (!address) return { transport, address: 'local', label: transport };
  const port = socket.remotePort;
  return { transport, address, ...(port !== undefined ? { port } : {}), label: `${address}:${port ?? '?'}` };
}

function addressOf(server: ServerLike): ListenAddress {
  const a = server.address();
  if (a && typeof a === 'object') return { host: a.address, port: a.port };
  return { path: String(a) };
}

function listenOn(server: ServerLike, args: unknown[], what: string, hint: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new EdgeechoError('RESOURCE_EXHAUSTED', `cannot listen on ${what}: ${err.code ?? err.message} ${hint}`, { errno: err.code }, { cause: err }));
    };
    server.once('error', onError);
    (server as Server).listen(...(args as []), () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
}

export interface TcpListenerOptions {
  host: string;
  port: number;
  /** Pending connections queue (listen backlog). */
  backlog?: number;
}

export function tcpListener(options: TcpListenerOptions): Listener {
  const server = createServer({ noDelay: true });
  return serverListener({
    name: 'tcp',
    transport: 'tcp',
    server,
    bind: (s) => listenOn(s, [{ host: options.host, port: options.port, backlog: options.backlog ?? 511 }], `${options.host}:${options.port}`, '(--host/--port, EDGEECHO_HOST/EDGEECHO_PORT)'),
  });
}

export interface UnixListenerOptions {
  path: string;
  /** File mode applied after binding, e.g. 0o660. */
  mode: number;
  /** Group name or numeric gid to own the socket; empty leaves it unchanged. */
  group?: string;
}

export function unixListener(options: UnixListenerOptions): Listener {
  const server = createServer();
  const where = `unix socket ${options.path}`;
  const hint = '(--socket, EDGEECHO_SOCKET)';
  return serverListener({
    name: 'unix',
    transport: 'unix',
    server,
    async bind(s) {
      await removeStaleSocket(options.path, hint);
      await listenOn(s, [{ path: options.path }], where, hint);
      // between bind and chmod the socket has the umask's mode; the directory's permissions guard that moment
      await chmod(options.path, options.mode);
      if (options.group) await chown(options.path, -1, await resolveGid(options.group));
    },
    async afterClose() {
      await unlink(options.path).catch(() => undefined);
    },
  });
}

/** A socket file left by a daemon that died is removed; one with a live daemon behind it is an error. */
async function removeStaleSocket(path: string, hint: string): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (!st) return;
  if (!st.isSocket()) {
    throw new EdgeechoError('CONFLICT', `cannot listen on unix socket ${path}: a file that is not a socket is in the way ${hint}`, { path });
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new EdgeechoError('CONFLICT', `cannot listen on unix socket ${path}: another daemon is answering there ${hint}`, { path });
  await unlink(path);
}

async function resolveGid(group: string): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  const lines = (await readFile('/etc/group', 'utf8').catch(() => '')).split('\n');
  for (const line of lines) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new EdgeechoError('NOT_FOUND', `socket group "${group}" is not in /etc/group; expected a group name or a numeric gid (EDGEECHO_SOCKET_GROUP)`, { group });
}

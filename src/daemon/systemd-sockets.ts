/**
 * Socket activation (sd_listen_fds without libsystemd): systemd passes already-listening sockets as
 * fds 3, 4, ... and says so in LISTEN_FDS, addressed to LISTEN_PID, optionally naming them in
 * LISTEN_FDNAMES (FileDescriptorName= in the .socket unit). The daemon adopts them as net.Servers.
 */
import { createServer, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { readFileSync, readlinkSync } from 'node:fs';
import { EdgeechoError } from '../../protocol/errors.js';
import { assertExposureAllowed, isLoopback } from './auth.js';
import type { Listener, Peer } from './listen.js';
import { secureAcceptedSocket, type ServerTls } from './tls.js';

export const SD_LISTEN_FDS_START = 3;
/** More than this is a corrupt environment, not a socket unit. */
export const MAX_LISTEN_FDS = 64;

export interface SystemdSocket {
  fd: number;
  /** From LISTEN_FDNAMES, or "unknown" as sd_listen_fds_with_names reports it. */
  name: string;
}

/**
 * Reads the LISTEN_* variables and deletes them from `env`, so that child processes (systemd-notify,
 * anything spawned later) do not believe the sockets are theirs. Returns [] when systemd passed nothing
 * or the sockets were meant for another process (LISTEN_PID is not ours: a parent's leftovers).
 */
export function takeSystemdSockets(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): SystemdSocket[] {
  const fdsText = env.LISTEN_FDS;
  const pidText = env.LISTEN_PID;
  const namesText = env.LISTEN_FDNAMES;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (fdsText === undefined || fdsText === '') return [];
  if (pidText === undefined || !/^\d+$/.test(pidText) || Number(pidText) !== pid) return [];
  if (!/^\d+$/.test(fdsText) || Number(fdsText) > MAX_LISTEN_FDS) {
    throw new EdgeechoError('BAD_REQUEST', `LISTEN_FDS: expected an integer 0..${MAX_LISTEN_FDS} from systemd, got "${fdsText}"`);
  }
  const count = Number(fdsText);
  const names = namesText?.split(':') ?? [];
  // systemd sends exactly one name per fd; a mismatch means someone else built the variable.
  const named = names.length === count;
  return Array.from({ length: count }, (_, i) => ({ fd: SD_LISTEN_FDS_START + i, name: named ? names[i]! || 'unknown' : 'unknown' }));
}

export interface SystemdListenerOptions {
  /** Serve TLS on the TCP sockets (unix sockets stay plain). */
  tls?: ServerTls | null;
  handshakeTimeoutMs?: number;
  /** False: a TCP socket on a non-loopback address is refused at open (no EDGEECHO_TOKEN_FILE). */
  authConfigured?: boolean;
  log?: Logger;
}

/**
 * A Listener on a socket systemd passed. The family (TCP or unix) is read from each accepted connection,
 * so TLS applies to TCP connections only; open() refuses a non-loopback TCP socket without auth, as the
 * daemon refuses EDGEECHO_HOST=0.0.0.0 without a token.
 */
export function systemdListener(socket: SystemdSocket, options: SystemdListenerOptions = {}): Listener {
  const server = createServer({ noDelay: true });
  const where = `systemd socket fd ${socket.fd} (${socket.name})`;
  return {
    name: `systemd:${socket.name}#${socket.fd}`,
    async open(onConnection) {
      server.on('connection', (raw: Socket) => {
        if (!raw.remoteAddress) {
          onConnection(raw, { transport: 'systemd-unix', address: 'local', label: 'systemd-unix' });
          return;
        }
        const peer = (transport: string): Peer => ({ transport, address: raw.remoteAddress!, port: raw.remotePort!, label: `${raw.remoteAddress}:${raw.remotePort}` });
        if (!options.tls) {
          onConnection(raw, peer('systemd-tcp'));
          return;
        }
        const label = `${raw.remoteAddress}:${raw.remotePort}`;
        secureAcceptedSocket(raw, options.tls, options.handshakeTimeoutMs).then(
          (secure) => onConnection(secure as Socket, peer('systemd-tls')),
          (err: Error) => options.log?.debug({ peer: label, err: err.message }, 'TLS handshake failed'),
        );
      });
      await new Promise<void>((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException): void =>
          reject(
            new EdgeechoError(
              'INTERNAL',
              `cannot listen on ${where}: ${err.code ?? err.message}; expected a listening stream socket (ListenStream= in the .socket unit)`,
              { fd: socket.fd, name: socket.name },
              { cause: err },
            ),
          );
        server.once('error', onError);
        try {
          server.listen({ fd: socket.fd }, () => {
            server.off('error', onError);
            resolve();
          });
        } catch (err) {
          onError(err as NodeJS.ErrnoException);
        }
      });
      // Node answers null for a unix socket opened from an fd (its pipe handle has no getsockname).
      const address = server.address();
      if (address && typeof address === 'object') {
        if (options.authConfigured === false && !isLoopback(address.address)) {
          await new Promise<void>((resolve) => server.close(() => resolve()));
          assertExposureAllowed(address.address, false, `${where}, ListenStream= in the .socket unit`);
        }
        return { host: address.address, port: address.port };
      }
      return { path: typeof address === 'string' ? address : unixPathOfFd(socket.fd) };
    },
    close: () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())),
  };
}

/**
 * The path a unix socket fd is bound to, for logs: the fd's inode looked up in /proc/net/unix. Linux only;
 * elsewhere, or for an abstract or unnamed socket, "fd N".
 */
export function unixPathOfFd(fd: number): string {
  try {
    const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
    if (inode) {
      for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
        // Num RefCount Protocol Flags Type St Inode Path
        const cols = line.trim().split(/\s+/);
        if (cols[6] === inode && cols[7] && cols[7].startsWith('/')) return cols[7];
      }
    }
  } catch {
    // Not Linux or /proc not mounted: the fd number still identifies it in logs.
  }
  return `fd ${fd}`;
}

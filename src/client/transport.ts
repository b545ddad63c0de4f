/**
 * Opens the byte stream a client speaks frames over. Kept apart from the client so the protocol side never
 * touches `net`, and so TLS (or a test double) plugs in as another factory without changing the client.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { EdgeechoError } from '../../protocol/errors.js';

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Where the daemon listens: TCP host/port or a unix socket path. */
export type ConnectTarget = { host: string; port: number } | { path: string };

export interface SocketOptions {
  target: ConnectTarget;
  /** Aborted when the connect timeout fires or the caller gives up. */
  signal: AbortSignal;
}

/**
 * Resolves with a connected duplex stream, or rejects with an EdgeechoError. A TLS factory resolves after the
 * handshake; a test double may resolve with any Duplex.
 */
export type CreateSocket = (options: SocketOptions) => Promise<Duplex>;

export function describeTarget(target: ConnectTarget): string {
  return 'path' in target ? `unix socket ${target.path}` : `${target.host}:${target.port}`;
}

/**
 * Settles once `socket` emits `readyEvent` (connect, or secureConnect after a TLS handshake), or rejects with a
 * CONNECTION_CLOSED error whose message names the target and `hint` (the flags to change), or on abort.
 */
export function whenConnected<S extends Socket>(
  socket: S,
  readyEvent: 'connect' | 'secureConnect',
  target: ConnectTarget,
  signal: AbortSignal,
  hint: string,
  what = 'connect to',
  reason: (err: NodeJS.ErrnoException) => string = (err) => err.code ?? err.message,
): Promise<S> {
  return new Promise<S>((resolve, reject) => {
    const onAbort = (): void => {
      socket.destroy();
      reject(signal.reason);
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(
        new EdgeechoError(
          'CONNECTION_CLOSED',
          `cannot ${what} the edgeecho daemon at ${describeTarget(target)}: ${reason(err)} ${hint}`,
          { target: describeTarget(target), errno: err.code },
          { cause: err },
        ),
      );
    };
    socket.once('error', onError);
    socket.once(readyEvent, () => {
      socket.off('error', onError);
      signal.removeEventListener('abort', onAbort);
      socket.setNoDelay(true);
      resolve(socket);
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Plain TCP or unix socket. */
export const createNetSocket: CreateSocket = ({ target, signal }) => {
  const socket: Socket = 'path' in target ? netConnect({ path: target.path }) : netConnect({ host: target.host, port: target.port });
  const hint = 'path' in target ? '(--socket, EDGEECHO_SOCKET)' : '(--host/--port, EDGEECHO_HOST/EDGEECHO_PORT)';
  return whenConnected(socket, 'connect', target, signal, hint);
};

/**
 * Optional TLS on the TCP listener (EDGEECHO_TLS_CERT / EDGEECHO_TLS_KEY). The files are read once at
 * start; a bad pair stops the daemon with a message naming the file and the setting. The unix socket
 * never uses TLS: its file mode already decides who may connect.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, TLSSocket, type SecureContext, type Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { EdgeechoError } from '../../protocol/errors.js';
import { serverListener, type Listener } from './listen.js';

export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface ServerTls {
  cert: Buffer;
  key: Buffer;
  context: SecureContext;
  certFile: string;
}

/** Returns null when TLS is not configured; throws BAD_REQUEST for half a pair, unreadable files or a key that does not match. */
export function loadServerTls(settings: { tlsCert: string; tlsKey: string }): ServerTls | null {
  const { tlsCert, tlsKey } = settings;
  if (!tlsCert && !tlsKey) return null;
  if (!tlsCert || !tlsKey) {
    const missing = tlsCert ? 'EDGEECHO_TLS_KEY' : 'EDGEECHO_TLS_CERT';
    throw new EdgeechoError('BAD_REQUEST', `TLS needs both EDGEECHO_TLS_CERT and EDGEECHO_TLS_KEY; ${missing} is not set`, { missing });
  }
  const cert = readPem(tlsCert, 'EDGEECHO_TLS_CERT', 'CERTIFICATE');
  const key = readPem(tlsKey, 'EDGEECHO_TLS_KEY', 'PRIVATE KEY');
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw new EdgeechoError(
      'BAD_REQUEST',
      `TLS certificate ${tlsCert} (EDGEECHO_TLS_CERT) and key ${tlsKey} (EDGEECHO_TLS_KEY) do not form a pair: ${(err as Error).message}`,
      { cert: tlsCert, key: tlsKey },
      { cause: err },
    );
  }
  return { cert, key, context, certFile: tlsCert };
}

function readPem(path: string, setting: string, label: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new EdgeechoError('BAD_REQUEST', `${path} (${setting}) cannot be read: ${code}`, { path, errno: code }, { cause: err });
  }
  if (!data.toString('latin1').includes(label)) {
    throw new EdgeechoError('BAD_REQUEST', `${path} (${setting}): expected a PEM file with a ${label} block, found none`, { path });
  }
  return data;
}

/** A tls.Server whose secure connections go to `onConnection`, like net.createServer's listener. */
export function createServerWithTls(tls: ServerTls, onConnection?: (socket: TLSSocket) => void, handshakeTimeoutMs = DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS): TlsServer {
  return createTlsServer({ cert: tls.cert, key: tls.key, handshakeTimeout: handshakeTimeoutMs, minVersion: 'TLSv1.2', noDelay: true }, onConnection);
}

export interface TlsListenerOptions {
  host: string;
  port: number;
  tls: ServerTls;
  handshakeTimeoutMs?: number;
  backlog?: number;
  log?: Logger;
}

/** The TCP listener with TLS: connections reach the daemon once their handshake is done. */
export function tlsListener(options: TlsListenerOptions): Listener {
  const server = createServerWithTls(options.tls, undefined, options.handshakeTimeoutMs);
  // A client speaking plain TCP or distrusting the certificate fails here; that is its problem, not the daemon's.
  server.on('tlsClientError', (err: Error, socket: TLSSocket) => options.log?.debug({ peer: `${socket.remoteAddress}:${socket.remotePort}`, err: err.message }, 'TLS handshake failed'));
  const where = `${options.host}:${options.port}`;
  return serverListener({
    name: 'tls',
    transport: 'tls',
    server,
    connectionEvent: 'secureConnection',
    bind: (s) =>
      new Promise<void>((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException): void =>
          reject(new EdgeechoError('RESOURCE_EXHAUSTED', `cannot listen (TLS) on ${where}: ${err.code ?? err.message} (--host/--port, EDGEECHO_HOST/EDGEECHO_PORT)`, { errno: err.code }, { cause: err }));
        s.once('error', onError);
        (s as TlsServer).listen({ host: options.host, port: options.port, backlog: options.backlog ?? 511 }, () => {
          s.removeListener('error', onError);
          resolve();
        });
      }),
  });
}

/**
 * Server side TLS over a socket accepted by a plain net.Server: for sockets systemd hands over, whose
 * family (TCP or unix) is known only after they are adopted. Resolves once the handshake is done; a
 * failed or slow handshake destroys the socket and rejects.
 */
export function secureAcceptedSocket(raw: Socket, tls: ServerTls, handshakeTimeoutMs = DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = new TLSSocket(raw, { isServer: true, secureContext: tls.context });
    const timer = setTimeout(() => fail(new Error(`TLS handshake not finished within ${handshakeTimeoutMs} ms`)), handshakeTimeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      raw.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once('secure', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

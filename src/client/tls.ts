/**
 * TLS transport for the client: the same CreateSocket seam as plain TCP, resolving after the handshake.
 * The daemon's certificate is checked against `ca` (a PEM file's contents) or the system store.
 */
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { EdgeechoError } from '../../protocol/errors.js';
import { describeTarget, whenConnected, type CreateSocket } from './transport.js';

export interface ClientTlsOptions {
  /** PEM CA certificate(s) trusted for the daemon; default: the system store. */
  ca?: string | Buffer;
  /** Name checked against the certificate; default: the host connected to. */
  servername?: string;
}

export function createTlsSocketFactory(options: ClientTlsOptions = {}): CreateSocket {
  return async ({ target, signal }): Promise<Duplex> => {
    if ('path' in target) {
      throw new EdgeechoError('BAD_REQUEST', `TLS is for TCP connections; got ${describeTarget(target)} (drop --tls or use --host/--port)`);
    }
    const servername = options.servername ?? target.host;
    const socket: TLSSocket = tlsConnect({
      host: target.host,
      port: target.port,
      // SNI must not carry an IP address (RFC 6066); the identity check still uses it.
      ...(/^[\d.]+$|:/.test(servername) ? {} : { servername }),
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      minVersion: 'TLSv1.2',
    });
    // TLS failures are told by their message (certificate checks), not only their code.
    const reason = (err: NodeJS.ErrnoException): string => `${err.code ?? ''} ${err.message}`.trim();
    return whenConnected(socket, 'secureConnect', target, signal, '(--tls-ca, EDGEECHO_TLS_CA)', 'open TLS to', reason);
  };
}

/**
 * TLS transport for the client: the same CreateSocket seam as plain TCP, resolving after the handshake.
 * The daemon's certificate is checked against `ca` (a PEM file's contents) or the system store.
 */
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { EdgeechoError } from '../../protocol/errors.js';
import { describeTarget, type CreateSocket } from './transport.js';

export interface ClientTlsOptions {
  /** PEM CA certificate(s) trusted for the daemon; default: the system store. */
  ca?: string | Buffer;
  /** Name checked against the certificate; default: the host connected to. */
  servername?: string;
}

export function createTlsSocketFactory(options: ClientTlsOptions = {}): CreateSocket {
  return ({ target, signal }) =>
    new Promise<Duplex>((resolve, reject) => {
      if ('path' in target) {
        reject(new EdgeechoError('BAD_REQUEST', `TLS is for TCP connections; got ${describeTarget(target)} (drop --tls or use --host/--port)`));
        return;
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
            `cannot open TLS to the edgeecho daemon at ${describeTarget(target)}: ${err.code ?? ''} ${err.message} (--tls-ca, EDGEECHO_TLS_CA)`.replace(/\s+/g, ' '),
            { target: describeTarget(target), errno: err.code },
            { cause: err },
          ),
        );
      };
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        socket.off('error', onError);
        signal.removeEventListener('abort', onAbort);
        socket.setNoDelay(true);
        resolve(socket);
      });
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
}

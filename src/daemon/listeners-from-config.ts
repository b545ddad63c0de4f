/**
 * Who may reach the daemon, decided once at start from config: the token (auth.ts), TLS (tls.ts) and the
 * sockets systemd passed (systemd-sockets.ts) become the Daemon's listeners and authenticate hook.
 * Everything that would expose the daemon unsafely is refused here, before anything listens.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { assertExposureAllowed, readTokenFile, TokenAuth } from './auth.js';
import { tcpListener, unixListener, type Listener } from './listen.js';
import { systemdListener, takeSystemdSockets } from './systemd-sockets.js';
import { loadServerTls, tlsListener, type ServerTls } from './tls.js';

export type ListenerSettings = Pick<
  Config,
  'host' | 'port' | 'tcp' | 'socket' | 'socketMode' | 'socketGroup' | 'tokenFile' | 'authMaxFailures' | 'tlsCert' | 'tlsKey' | 'handshakeTimeoutMs'
>;

export interface ListenerPlan {
  listeners: Listener[];
  auth: TokenAuth | null;
  tls: boolean;
  /** How many sockets systemd passed (0: not socket-activated). */
  systemdSockets: number;
}

export function planListeners(config: ListenerSettings, options: { env?: NodeJS.ProcessEnv; pid?: number; log?: Logger } = {}): ListenerPlan {
  const token = config.tokenFile ? readTokenFile(config.tokenFile, options.log) : null;
  const auth = token === null ? null : new TokenAuth({ token, maxFailures: config.authMaxFailures, ...(options.log ? { log: options.log } : {}) });
  const tls = loadServerTls(config);
  const sockets = takeSystemdSockets(options.env ?? process.env, options.pid ?? process.pid);
  if (sockets.length > 0) {
    options.log?.info({ sockets: sockets.map((s) => `${s.name}#${s.fd}`) }, 'socket-activated: listening only on the sockets systemd passed (EDGEECHO_HOST/PORT/SOCKET ignored)');
    const listeners = sockets.map((s) =>
      systemdListener(s, { tls, authConfigured: auth !== null, handshakeTimeoutMs: config.handshakeTimeoutMs, ...(options.log ? { log: options.log } : {}) }),
    );
    return { listeners, auth, tls: tls !== null, systemdSockets: sockets.length };
  }
  if (config.tcp) assertExposureAllowed(config.host, auth !== null);
  return { listeners: listenersFromConfig(config, tls, options.log), auth, tls: tls !== null, systemdSockets: 0 };
}

/** The TCP listener (TLS when a certificate is configured) and the unix socket that config asks for. */
export function listenersFromConfig(
  config: Pick<Config, 'host' | 'port' | 'tcp' | 'socket' | 'socketMode' | 'socketGroup' | 'handshakeTimeoutMs'>,
  tls: ServerTls | null = null,
  log?: Logger,
): Listener[] {
  const listeners: Listener[] = [];
  if (config.tcp) {
    listeners.push(
      tls
        ? tlsListener({ host: config.host, port: config.port, tls, handshakeTimeoutMs: config.handshakeTimeoutMs, ...(log ? { log } : {}) })
        : tcpListener({ host: config.host, port: config.port }),
    );
  }
  if (config.socket) listeners.push(unixListener({ path: config.socket, mode: config.socketMode, group: config.socketGroup }));
  return listeners;
}

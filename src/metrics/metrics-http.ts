/**
 * The optional Prometheus listener (EDGEECHO_METRICS, e.g. 127.0.0.1:9411): GET /metrics, nothing else. It
 * follows the control port's rule: a non-loopback address needs EDGEECHO_TOKEN_FILE, and with a token configured
 * every scrape carries it as `Authorization: Bearer <token>` (failures count against the same per-peer limit).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { EdgeechoError } from '../../protocol/errors.js';
import { assertExposureAllowed, type TokenAuth } from '../daemon/auth.js';
import type { Metrics } from './metrics.js';

/** Scrapers are few; a flood of them must not take sockets from the control port. */
const MAX_METRICS_CONNECTIONS = 32;

export interface MetricsAddress {
  host: string;
  port: number;
}

/** `host:port` or `[v6]:port`; empty: off (null). Throws BAD_REQUEST naming the setting. */
export function parseMetricsAddress(text: string): MetricsAddress | null {
  const value = text.trim();
  if (value === '') return null;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new EdgeechoError('BAD_REQUEST', `EDGEECHO_METRICS: expected host:port like 127.0.0.1:9411 (port 0..65535, empty: off), got "${text}"`, { value: text });
  }
  return { host: (m[1] ?? m[2])!, port };
}

export interface MetricsServer {
  address: MetricsAddress;
  close(): Promise<void>;
}

export async function serveMetrics(options: { address: MetricsAddress; metrics: Metrics; auth: TokenAuth | null; log: Logger }): Promise<MetricsServer> {
  const { address, metrics, auth, log } = options;
  assertExposureAllowed(address.host, auth !== null, 'EDGEECHO_METRICS');
  const server: Server = createServer((req, res) => {
    handle(req, res, metrics, auth).catch((err: Error) => {
      log.error({ err: err.message }, 'metrics request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('metrics failed\n');
    });
  });
  server.maxConnections = MAX_METRICS_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  log.info({ host: bound.address, port: bound.port }, 'metrics listening');
  return {
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, metrics: Metrics, auth: TokenAuth | null): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/metrics') return reply(res, 404, 'not found: the metrics are at GET /metrics\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed: GET /metrics\n', { allow: 'GET, HEAD' });
  if (auth) {
    const header = req.headers.authorization ?? '';
    const token = /^Bearer (.+)$/i.exec(header)?.[1];
    let accepted: boolean;
    try {
      accepted = await auth.authenticate(token, req.socket.remoteAddress ?? 'unknown');
    } catch (err) {
      return reply(res, 429, `${(err as Error).message}\n`);
    }
    if (!accepted) return reply(res, 401, 'unauthorized: this daemon requires "Authorization: Bearer <token>" (EDGEECHO_TOKEN_FILE)\n', { 'www-authenticate': 'Bearer' });
  }
  const text = await metrics.text();
  res.writeHead(200, { 'content-type': metrics.contentType });
  res.end(req.method === 'HEAD' ? undefined : text);
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(body);
}

/**
 * Token auth for hello: the token is read once at start, compared in constant time, and failed attempts
 * are counted per peer address so that guessing is slow (each failure delays its answer) and bounded
 * (past EDGEECHO_AUTH_MAX_FAILURES a minute the peer is refused without a comparison).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { EdgeechoError } from '../../protocol/errors.js';

export const AUTH_WINDOW_MS = 60_000;
/** First failure waits this long, each further one in the window doubles it up to the maximum. */
export const DEFAULT_FAILURE_DELAY_MS = 250;
export const MAX_FAILURE_DELAY_MS = 4_000;
/** Peers remembered at once; a flood of distinct addresses forgets the oldest rather than grow. */
export const MAX_TRACKED_PEERS = 10_000;
/** Shorter tokens are accepted but logged: they can be guessed offline from a leaked hash or over time. */
export const MIN_RECOMMENDED_TOKEN_CHARS = 16;

/**
 * Reads the token file. Refuses (throws BAD_REQUEST naming the file and the setting) when it cannot be
 * read, is empty, or is readable or writable by others; trailing whitespace and newline are not part of
 * the token.
 */
export function readTokenFile(path: string, log?: Logger): string {
  let text: string;
  let mode: number;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new EdgeechoError('BAD_REQUEST', `token file ${path} (EDGEECHO_TOKEN_FILE) cannot be read: ${code}`, { path, errno: code }, { cause: err });
  }
  if ((mode & 0o007) !== 0) {
    throw new EdgeechoError(
      'BAD_REQUEST',
      `token file ${path} (EDGEECHO_TOKEN_FILE) has mode ${(mode & 0o777).toString(8).padStart(4, '0')}; expected no access for others (chmod o-rwx ${path}, e.g. 0600 or 0640)`,
      { path, mode: mode & 0o777 },
    );
  }
  const token = text.replace(/\s+$/, '').replace(/^\s+/, '');
  if (token.length === 0) {
    throw new EdgeechoError('BAD_REQUEST', `token file ${path} (EDGEECHO_TOKEN_FILE) is empty; expected one line holding the token (e.g. openssl rand -hex 32)`, { path });
  }
  if (/[\r\n]/.test(token)) {
    throw new EdgeechoError('BAD_REQUEST', `token file ${path} (EDGEECHO_TOKEN_FILE) holds several lines; expected exactly one line holding the token`, { path });
  }
  if (token.length < MIN_RECOMMENDED_TOKEN_CHARS) {
    log?.warn({ path, chars: token.length, recommended: MIN_RECOMMENDED_TOKEN_CHARS }, 'auth token is short; use e.g. openssl rand -hex 32');
  }
  return token;
}

/** The address part of a peer as the connection names it ("10.0.0.5:51234", "[::1]:4000", "unix:..."). */
export function peerAddress(peer: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracketed) return bracketed[1]!;
  if (isIP(peer)) return peer;
  const lastColon = peer.lastIndexOf(':');
  if (lastColon > 0 && /^\d+$/.test(peer.slice(lastColon + 1)) && isIP(peer.slice(0, lastColon))) return peer.slice(0, lastColon);
  // Unix socket peers share one bucket: the socket's file mode already limits who can try.
  return peer.startsWith('unix') || peer === '' || peer === 'local' ? 'unix' : peer;
}

/** Loopback: 127.0.0.0/8, ::1, IPv4-mapped loopback, and the name localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/**
 * Start-up refusal: a TCP listener on a non-loopback address without a token would hand Docker to
 * anyone who can reach the port. `listenHost` is the address actually listened on.
 */
export function assertExposureAllowed(listenHost: string, tokenConfigured: boolean, origin = 'EDGEECHO_HOST'): void {
  if (tokenConfigured || isLoopback(listenHost)) return;
  throw new EdgeechoError(
    'BAD_REQUEST',
    `refusing to listen on ${listenHost} (${origin}) without authentication: a non-loopback address requires EDGEECHO_TOKEN_FILE (or listen on 127.0.0.1 / a unix socket)`,
    { host: listenHost },
  );
}

export interface TokenAuthOptions {
  token: string;
  /** Failed attempts per peer address per AUTH_WINDOW_MS before further attempts are refused unchecked. */
  maxFailures: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  log?: Logger;
  baseDelayMs?: number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref?.());

export class TokenAuth {
  private readonly digest: Buffer;
  private readonly maxFailures: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly log: Logger | undefined;
  private readonly baseDelayMs: number;
  /** Failure times per peer address, oldest first; Map order doubles as least-recently-failed order. */
  private readonly failures = new Map<string, number[]>();

  constructor(options: TokenAuthOptions) {
    this.digest = hash(options.token);
    this.maxFailures = options.maxFailures;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? defaultSleep;
    this.log = options.log;
    this.baseDelayMs = options.baseDelayMs ?? DEFAULT_FAILURE_DELAY_MS;
  }

  /**
   * The Daemon's authenticate hook. Resolves true for the right token; false, after a delay that grows
   * with the peer's recent failures, for a wrong or missing one. Throws UNAUTHENTICATED without comparing
   * once the peer is over its limit; the connection should then be closed.
   */
  async authenticate(token: unknown, peer: string | { address: string }): Promise<boolean> {
    const address = peerAddress(typeof peer === 'string' ? peer : peer.address);
    const now = this.now();
    const recent = this.recentFailures(address, now);
    if (recent.length >= this.maxFailures) {
      const retryAfterMs = Math.max(0, recent[0]! + AUTH_WINDOW_MS - now);
      this.log?.warn({ peer: address, failures: recent.length }, 'hello refused: too many failed attempts');
      throw new EdgeechoError(
        'UNAUTHENTICATED',
        `too many failed hellos from ${address}: ${recent.length} in the last ${AUTH_WINDOW_MS / 1000} s (limit EDGEECHO_AUTH_MAX_FAILURES=${this.maxFailures}); retry in ${Math.ceil(retryAfterMs / 1000)} s`,
        { peer: address, retry_after_ms: retryAfterMs, limit: this.maxFailures },
      );
    }
    const candidate = typeof token === 'string' ? token : Buffer.isBuffer(token) || token instanceof Uint8Array ? Buffer.from(token) : null;
    // Hashing both sides first makes the comparison fixed-length: timingSafeEqual leaks nothing, not even the length.
    if (candidate !== null && timingSafeEqual(hash(candidate), this.digest)) return true;
    // Recorded before the delay, so parallel attempts from one peer already count against each other.
    recent.push(now);
    this.failures.delete(address);
    this.failures.set(address, recent);
    this.forgetOldest();
    this.log?.info({ peer: address, failures: recent.length, limit: this.maxFailures }, candidate === null ? 'hello without token' : 'hello with a wrong token');
    await this.sleep(Math.min(MAX_FAILURE_DELAY_MS, this.baseDelayMs * 2 ** (recent.length - 1)));
    return false;
  }

  /** Failures counted for a peer address now (for tests and diagnostics). */
  failureCount(peer: string): number {
    return this.recentFailures(peerAddress(peer), this.now()).length;
  }

  private recentFailures(address: string, now: number): number[] {
    const list = this.failures.get(address);
    if (!list) return [];
    const fresh = list.filter((t) => now - t < AUTH_WINDOW_MS);
    if (fresh.length === 0) this.failures.delete(address);
    else if (fresh.length !== list.length) this.failures.set(address, fresh);
    return fresh;
  }

  private forgetOldest(): void {
    while (this.failures.size > MAX_TRACKED_PEERS) {
      const oldest = this.failures.keys().next().value as string;
      this.failures.delete(oldest);
    }
  }
}

function hash(value: string | Buffer): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * Plain counters the daemon keeps as it works. The metrics module reads them when scraped, so the hot path (a
 * ping) pays an integer increment rather than a metric call.
 */

/** Why the daemon ended a connection itself. */
export type DisconnectReason = 'stalled' | 'write_buffer' | 'handshake_timeout' | 'idle_timeout' | 'bad_frame';

export class DaemonStats {
  connectionsAccepted = 0;
  /** Over EDGEECHO_MAX_CONNECTIONS: refused instead of greeted. */
  connectionsRefused = 0;
  framesIn = 0;
  framesOut = 0;
  authFailures = 0;
  /** Times a connection stopped being read because it was at a bound (in-flight slots or unsent output). */
  readPauses = 0;
  readonly disconnects: Record<DisconnectReason, number> = { stalled: 0, write_buffer: 0, handshake_timeout: 0, idle_timeout: 0, bad_frame: 0 };
}

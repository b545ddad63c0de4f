/**
 * Control-connection metrics. The daemon counts in plain integers (DaemonStats) on its hot path; these
 * collectors copy them into prom-client only when scraped.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { DaemonStats } from '../daemon/daemon-stats.js';

export interface DaemonView {
  readonly stats: DaemonStats;
  readonly connectionCount: number;
  inflightCount(): number;
}

/** A counter whose value is read from `read()` at scrape time (prom-client counters only go up by inc). */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

export function watchDaemon(registry: Registry, daemon: DaemonView): void {
  const registers = [registry];
  const stats = daemon.stats;
  new Gauge({ name: 'edgeecho_control_connections', help: 'open control connections', registers, collect() { this.set(daemon.connectionCount); } });
  new Gauge({ name: 'edgeecho_inflight_requests', help: 'requests in flight on every connection (detached ops of closed ones included)', registers, collect() { this.set(daemon.inflightCount()); } });
  mirroredCounter(registry, 'edgeecho_control_connections_accepted_total', 'control connections accepted', () => stats.connectionsAccepted);
  mirroredCounter(registry, 'edgeecho_control_connections_refused_total', 'control connections refused at EDGEECHO_MAX_CONNECTIONS', () => stats.connectionsRefused);
  mirroredCounter(registry, 'edgeecho_frames_in_total', 'control frames read and handled', () => stats.framesIn);
  mirroredCounter(registry, 'edgeecho_frames_out_total', 'control frames sent (greetings, answers, status, events)', () => stats.framesOut);
  mirroredCounter(registry, 'edgeecho_auth_failures_total', 'hellos refused for a missing, wrong or rate-limited token', () => stats.authFailures);
  mirroredCounter(registry, 'edgeecho_read_pauses_total', 'times a connection stopped being read at a bound (in-flight requests, unsent output)', () => stats.readPauses);
  new Counter({
    name: 'edgeecho_disconnects_total',
    help: 'connections the daemon ended, by reason (stalled, write_buffer, handshake_timeout, idle_timeout, bad_frame)',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(stats.disconnects)) this.inc({ reason }, n);
    },
  });
}

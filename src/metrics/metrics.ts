/**
 * The daemon's one metrics registry: prom-client's process defaults (CPU, memory, event-loop lag, GC, handles)
 * plus the session and control-connection metrics. Served by the `metrics` op and, when EDGEECHO_METRICS is set,
 * by an HTTP listener (metrics-http.ts).
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { OpDefinition } from '../ops/contract.js';
import { watchDaemon, type DaemonView } from './daemon-metrics.js';
import { watchSessions, type SessionMetricsDeps } from './session-metrics.js';

export class Metrics {
  readonly registry = new Registry();
  private readonly closers: Array<() => void> = [];

  constructor(sessions?: Omit<SessionMetricsDeps, 'registry'>) {
    collectDefaultMetrics({ register: this.registry, prefix: 'edgeecho_' });
    if (sessions) this.closers.push(watchSessions({ ...sessions, registry: this.registry }));
  }

  /** The daemon exists only after the ops are built: its connection metrics are added then. */
  watchDaemon(daemon: DaemonView): void {
    watchDaemon(this.registry, daemon);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    for (const close of this.closers.splice(0)) close();
  }
}

/** The `metrics` op: the same text as the HTTP listener, for hosts where only the control port is reachable. */
export function metricsOp(metrics: Metrics): OpDefinition<Record<string, never>> {
  return {
    name: 'metrics',
    summary: 'the daemon\'s Prometheus metrics as text (the same as the EDGEECHO_METRICS listener serves)',
    args: {},
    handler: async () => ({ content_type: metrics.contentType, text: await metrics.text() }),
  };
}

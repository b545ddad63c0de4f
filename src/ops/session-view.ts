/** A session record as session.get/list/stop/watch answer it: wire-style (snake_case) field names. */
import type { SessionRecord } from '../sessions/types.js';

export function sessionView(record: SessionRecord): Record<string, unknown> {
  return {
    id: record.id,
    mode: record.mode,
    state: record.state,
    count: record.count,
    payload_bytes: record.payloadBytes,
    rate: record.rate,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    ended_at: record.endedAt,
    network: record.network,
    location: record.location,
    probe: record.probe,
    containers: record.containers.map((c) => ({
      id: c.id,
      name: c.name,
      role: c.role,
      started_at: c.startedAt,
      finished_at: c.finishedAt,
      exit_code: c.exitCode,
      stats: c.stats,
    })),
    error: record.error,
    transitions: record.transitions,
  };
}

/** What a session asks of the workflow: its mode, which decides the roles it runs, and the probe's parameters. */
import type { Role } from '../runtime/driver.js';

export type SessionMode = 'plain' | 'segmented';

export interface SessionSpec {
  id: string;
  mode: SessionMode;
  count: number;
  payloadBytes: number;
  /** frames per second; null: as fast as backpressure allows */
  rate: number | null;
}

/** The roles a session of each mode runs, in data-path order: the probe, the stream server, and the segmentation server when segmented. */
export function rolesOf(mode: SessionMode): Role[] {
  return mode === 'segmented' ? ['probe', 'stream', 'segmentation'] : ['probe', 'stream'];
}

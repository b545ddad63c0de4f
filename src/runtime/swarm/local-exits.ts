/**
 * Exits of swarm task containers on the manager's own node, from its engine's event stream: the engine says a
 * container died within milliseconds, while the manager hears it from the node's agent a moment later and the task
 * watch reads that on its next look. Tasks on other nodes are seen by the watch alone.
 */
import type Docker from 'dockerode';
import { LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE, LABEL_SESSION } from '../driver.js';
import { LineSplitter } from '../docker/output.js';

export interface LocalExit {
  action: 'die' | 'oom';
  service: string;
  task?: string;
  exitCode?: number;
  labels: Record<string, string>;
  timeNano: number;
}

const SERVICE_ID = 'com.docker.swarm.service.id';
const TASK_ID = 'com.docker.swarm.task.id';

/** One engine event line as a LocalExit, or null (not a task container's die or oom). */
export function localExit(line: string): LocalExit | null {
  let e: { Type?: string; Action?: string; Actor?: { Attributes?: Record<string, string> }; timeNano?: number; time?: number };
  try {
    e = JSON.parse(line);
  } catch {
    return null;
  }
  const attributes = e.Actor?.Attributes ?? {};
  const service = attributes[SERVICE_ID];
  if (e.Type !== 'container' || (e.Action !== 'die' && e.Action !== 'oom') || !service) return null;
  const labels: Record<string, string> = {};
  for (const key of [LABEL_MANAGED, LABEL_SESSION, LABEL_ROLE, LABEL_INSTANCE]) if (attributes[key]) labels[key] = attributes[key];
  const exit: LocalExit = { action: e.Action, service, labels, timeNano: e.timeNano ?? (e.time ?? 0) * 1e9 };
  if (attributes[TASK_ID]) exit.task = attributes[TASK_ID];
  if (attributes.exitCode !== undefined && /^-?\d+$/.test(attributes.exitCode)) exit.exitCode = Number(attributes.exitCode);
  return exit;
}

/** Follows the engine's die and oom events of labelled task containers until the signal aborts or the stream ends. */
export async function followLocalExits(docker: Docker, signal: AbortSignal, onExit: (exit: LocalExit) => void): Promise<void> {
  const stream = (await docker.getEvents({ filters: { type: ['container'], event: ['die', 'oom'], label: [`${LABEL_MANAGED}=true`] }, abortSignal: signal } as never)) as unknown as NodeJS.ReadableStream & { destroy(): void };
  // A watcher in the background: its connection does not keep the process alive (the daemon's listeners do).
  (stream as unknown as { socket?: { unref?: () => void } }).socket?.unref?.();
  const lines = new LineSplitter((line) => {
    const exit = line.trim() ? localExit(line) : null;
    if (exit) onExit(exit);
  });
  await new Promise<void>((resolve) => {
    stream.on('data', (chunk: Buffer) => lines.push(chunk));
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', () => resolve());
    signal.addEventListener('abort', () => (stream.destroy(), resolve()), { once: true });
  });
}

/** Sessions driven through the installed CLI inside a systemd box, over the unix socket or TCP, as an operator would. */
import type { SystemdBox } from './systemd-box.js';

export const UNIX = ['--socket', '/run/edgeecho/edgeecho.sock'];
export const TCP = ['--host', '127.0.0.1', '--port', '7411'];

export interface BoxSession {
  id: string;
  state: string;
  containers: Array<{ id: string; role: string; exit_code: number | null }>;
  transitions: Array<{ state: string; reason?: string }>;
}

/** The result frame's data in `--json` output (or the one record `session get` prints); throws with the CLI's output otherwise. */
export function resultData<T>(out: { code: number; stdout: string; stderr: string }, what: string): T {
  const frames = out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { kind?: string; data?: unknown });
  const result = frames.find((f) => f.kind === 'result') ?? (frames.length === 1 && !frames[0]!.kind ? { data: frames[0] } : undefined);
  if (out.code !== 0 || !result) throw new Error(`${what}: exit ${out.code}, no result frame\n${out.stderr.slice(-2000)}\n${out.stdout.slice(-2000)}`);
  return result.data as T;
}

/** `edgeecho session create ... --json`: the new session's id once it is ready. */
export async function createSession(box: SystemdBox, via: string[], args: string[]): Promise<string> {
  const out = await box.edgeecho(['session', 'create', ...args, '--json', ...via], 90_000);
  return resultData<{ id: string }>(out, `session create ${args.join(' ')}`).id;
}

export async function getSession(box: SystemdBox, via: string[], id: string): Promise<BoxSession> {
  return resultData<BoxSession>(await box.edgeecho(['session', 'get', id, '--json', ...via]), `session get ${id}`);
}

/** `edgeecho session watch`: the final record once the session completed, failed or stopped. */
export async function watchSession(box: SystemdBox, via: string[], id: string, timeoutMs = 90_000): Promise<BoxSession> {
  return resultData<BoxSession>(await box.edgeecho(['session', 'watch', id, '--json', ...via], timeoutMs), `session watch ${id}`);
}

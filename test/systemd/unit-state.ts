/** What systemd and journald say about a unit inside a systemd box: main PID, restarts, its log lines by PID. */
import { waitFor } from '../../support/daemon-process.js';
import type { JournalEntry, SystemdBox } from './systemd-box.js';

export const SERVICE = 'edgeecho.service';
export const SOCKET = 'edgeecho.socket';

export const mainPid = async (box: SystemdBox, unit = SERVICE): Promise<number> => Number((await box.show(unit, ['MainPID'])).MainPID);

/** The daemon's (or any process's) journal lines for the unit, by PID. */
export const linesOf = async (box: SystemdBox, pid: number, unit = SERVICE): Promise<JournalEntry['line'][]> =>
  (await box.journal(unit)).filter((e) => e.pid === pid).map((e) => e.line);

/** systemd's own messages about the unit (PID 1). */
export const systemdLines = async (box: SystemdBox, unit = SERVICE): Promise<string[]> =>
  (await box.journal(unit)).filter((e) => e.pid === 1).map((e) => e.line.msg ?? '');

/** Waits until the unit runs a main process other than `old`; returns the new PID and the ms since `since`. */
export async function runningAgain(box: SystemdBox, old: number, since: number, timeoutMs = 30_000, unit = SERVICE): Promise<{ pid: number; ms: number }> {
  const pid = await waitFor(`${unit} running again with a main PID other than ${old}`, async () => {
    const s = await box.show(unit, ['MainPID', 'ActiveState', 'SubState']);
    const p = Number(s.MainPID);
    return s.ActiveState === 'active' && s.SubState === 'running' && p !== 0 && p !== old ? p : undefined;
  }, timeoutMs, 100);
  return { pid, ms: Date.now() - since };
}

/** The daemon's "listening" line once journald has it. */
export const listeningLine = (box: SystemdBox, pid: number): Promise<JournalEntry['line']> =>
  waitFor(`the "listening" line of pid ${pid} in journald`, async () => (await linesOf(box, pid)).find((l) => l.msg === 'listening'), 10_000);

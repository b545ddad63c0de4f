/**
 * What /proc says about a process: enough to tell that a pid is still the process this runtime started (pid
 * reuse: the start time, /proc/<pid>/stat field 22, and the boot id must match), whether it has exited (gone, or
 * a zombie nobody reaped), and what it uses (CPU ticks, resident memory). Linux only, like the local runtime.
 */
import { readFileSync } from 'node:fs';

/** Kernel clock ticks per second for /proc times (USER_HZ: 100 on every mainstream Linux architecture). */
export const CLOCK_TICKS_PER_S = 100;

export interface ProcStat {
  pid: number;
  /** R, S, D, Z (zombie: exited, not reaped), T, ... */
  state: string;
  pgrp: number;
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
  /** Field 19. */
  niceness: number;
  /** Ticks after boot the process started (field 22): with the boot id, what makes a pid unambiguous. */
  startTime: number;
}

/** Parses /proc/<pid>/stat; the command name may hold spaces and parentheses, so fields count from the last ')'. */
export function parseProcStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`/proc/<pid>/stat: expected "pid (comm) state ...", got "${text.slice(0, 80)}"`);
  const pid = Number(text.slice(0, open).trim());
  const f = text.slice(close + 2).trim().split(/\s+/);
  // f[0] is field 3 (state): field n is f[n - 3].
  const num = (n: number): number => {
    const v = Number(f[n - 3]);
    if (!Number.isFinite(v)) throw new Error(`/proc/${pid}/stat: field ${n} is not a number`);
    return v;
  };
  return { pid, state: f[0] ?? '?', pgrp: num(5), cpuTicks: num(14) + num(15), niceness: num(19), startTime: num(22) };
}

/** The process's stat, or null when no such pid exists. */
export function readProcStat(pid: number): ProcStat | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

let cachedBootId: string | null = null;

/** Changes at every boot: a pid and start time recorded before a reboot name nothing after it. */
export function bootId(): string {
  cachedBootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return cachedBootId;
}

export interface ProcessIdentity {
  pid: number;
  startTime: number;
  bootId: string;
}

/** The identity of a pid now, for recording right after spawning it. */
export function identityOf(pid: number): ProcessIdentity | null {
  const stat = readProcStat(pid);
  return stat ? { pid, startTime: stat.startTime, bootId: bootId() } : null;
}

/** True while the process recorded as `who` still runs (not gone, not a zombie, not a reused pid). */
export function isAlive(who: ProcessIdentity): boolean {
  if (who.bootId !== bootId()) return false;
  const stat = readProcStat(who.pid);
  return stat !== null && stat.startTime === who.startTime && stat.state !== 'Z' && stat.state !== 'X';
}

/** Resident memory in bytes (VmRSS), or 0 when the process is gone. */
export function residentBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s*kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Seconds since boot (/proc/uptime), for a process's CPU share since it started. */
export function uptimeS(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

/**
 * A role's stdout and stderr are files (not pipes: a child writing into a pipe whose reader died with the daemon
 * would fail, and the children must outlive a kill -9 of the daemon). Reading their tails serves `logs`; a
 * bound keeps them from filling the disk: a file past its limit is cut to its last part. The emulators write
 * little (stdout: one ready and one stats line; stderr: phases and retries), so the cut is a guard, not routine.
 */
import { closeSync, openSync, readSync, fstatSync, ftruncateSync, writeSync } from 'node:fs';

/** Per file; past it the file keeps its last half. */
export const DEFAULT_LOG_MAX_BYTES = 1024 * 1024;

/** The last `maxBytes` of a file ('' when absent). */
export function readTail(path: string, maxBytes: number): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, maxBytes);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The last `lines` lines of a file. */
export function tailLines(path: string, lines: number, maxBytes = 256 * 1024): string {
  const text = readTail(path, maxBytes);
  const all = text.split('\n');
  const trailing = all[all.length - 1] === '' ? all.pop() : undefined;
  return all.slice(-lines).join('\n') + (trailing !== undefined ? '\n' : '');
}

/**
 * Cuts a file over maxBytes to its last maxBytes/2. The child appends (O_APPEND), so its next write lands at the
 * new end; a line written during the cut may be lost, which only costs log text. Returns whether it cut.
 */
export function boundFile(path: string, maxBytes = DEFAULT_LOG_MAX_BYTES): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch {
    return false;
  }
  try {
    const size = fstatSync(fd).size;
    if (size <= maxBytes) return false;
    const keep = Math.floor(maxBytes / 2);
    const buf = Buffer.alloc(keep);
    readSync(fd, buf, 0, keep, size - keep);
    const firstLine = buf.indexOf(10) + 1;
    const marker = Buffer.from(`[edgeecho: ${size - keep + firstLine} earlier bytes cut at the log bound of ${maxBytes}]\n`);
    ftruncateSync(fd, 0);
    writeSync(fd, marker, 0, marker.length, 0);
    writeSync(fd, buf, firstLine, keep - firstLine, marker.length);
    return true;
  } finally {
    closeSync(fd);
  }
}

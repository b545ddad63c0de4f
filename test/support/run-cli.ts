/** Runs `node bin/edgeecho.js ...` as a child process, from source, with a bounded lifetime. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/edgeecho.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment without EDGEECHO_* from the caller's shell, so tests see only what they set. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('EDGEECHO_')) env[k] = v;
  return { ...env, EDGEECHO_FROM_SOURCE: '1', ...extra };
}

export function spawnCli(args: string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [BIN, ...args], { env: cleanEnv(env), stdio: 'pipe' });
}

/** Collects a child's output until it exits; kills it (and fails) after timeoutMs. */
export function finish(child: ChildProcessWithoutNullStreams, timeoutMs = 15_000): Promise<CliResult & { stdoutBytes: Buffer }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`edgeecho ${child.spawnargs.slice(2).join(' ')} did not exit within ${timeoutMs} ms; stderr: ${Buffer.concat(err).toString()}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, stdout: stdoutBytes.toString(), stdoutBytes, stderr: Buffer.concat(err).toString() });
    });
  });
}

/** Runs to completion with `input` on stdin. */
export function runCli(args: string[], input: string | Buffer = '', env: Record<string, string> = {}, timeoutMs?: number): Promise<CliResult & { stdoutBytes: Buffer }> {
  const child = spawnCli(args, env);
  const done = finish(child, timeoutMs);
  child.stdin.on('error', () => {});
  child.stdin.end(input);
  return done;
}

export const jsonLines = (text: string): any[] => text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));

/** Host commands for the systemd harness (docker, debootstrap, npm), each bounded in time and output. */
import { execFile } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  cwd?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** Resolves with the exit code and output, whatever the code; rejects only when the program cannot run. */
export function run(command: string, args: string[], options: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env, timeout: options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS, maxBuffer: MAX_OUTPUT_BYTES, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean }) | null;
        if (e && typeof e.code === 'string') return reject(new Error(`${command}: ${e.message}`));
        if (e?.killed) return resolve({ code: -1, stdout, stderr: `${stderr}\n(killed after ${options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS} ms)` });
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

/** Like run, but a non-zero exit is an error naming the command and its stderr. */
export async function runOk(command: string, args: string[], options: CommandOptions = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ').slice(0, 300)}: exit ${result.code}\n${(result.stderr || result.stdout).slice(-3000)}`);
  }
  return result.stdout;
}

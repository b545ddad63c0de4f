/**
 * The live view of a workflow on a terminal: one line per step, a spinner while it runs that turns into a
 * tick or a cross with its duration. Pure functions (frames in, text out) so the rendering is tested
 * without a terminal; the command owns the timer and the stream.
 */

export const SPINNER_FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'] as const;
/** Redraw period of the spinner: fast enough to look alive, slow enough not to flood a slow terminal. */
export const DEFAULT_SPINNER_INTERVAL_MS = 80;
export const TICK = '✔';
export const CROSS = '✖';

export type StepState = 'running' | 'done' | 'failed';

export interface StepLine {
  step: string;
  state: StepState;
  /** Local clock when the step was first seen running (ms), for the spinner's running duration. */
  seenAt: number;
  /** The daemon's measure once the step ended. */
  elapsedMs: number | null;
  details: Record<string, unknown> | null;
}

export interface LiveState {
  steps: StepLine[];
}

export interface StatusFields {
  [field: string]: unknown;
  step?: unknown;
  state?: unknown;
  elapsed_ms?: unknown;
  duration_ms?: unknown;
  details?: unknown;
}

export function initialState(): LiveState {
  return { steps: [] };
}

/**
 * Folds one status frame into the state. A step keeps the line it first appeared on, so a step that
 * started, then ended, is redrawn in place. Frames without a step name (other status kinds) change nothing.
 */
export function applyStatus(state: LiveState, frame: StatusFields, now: number): LiveState {
  if (typeof frame.step !== 'string' || frame.step === '') return state;
  const stepState: StepState = frame.state === 'done' ? 'done' : frame.state === 'failed' ? 'failed' : 'running';
  // A finished step shows its own duration; elapsed_ms (time since the workflow began) only when no duration came.
  const took = typeof frame.duration_ms === 'number' ? frame.duration_ms : frame.elapsed_ms;
  const elapsedMs = typeof took === 'number' && stepState !== 'running' ? took : null;
  const given = frame.details && typeof frame.details === 'object' && !Array.isArray(frame.details) ? (frame.details as Record<string, unknown>) : null;
  // The workflow engine puts a failed step's error beside details, not inside.
  const details = frame.error !== undefined && frame.error !== null ? { ...given, error: frame.error } : given;
  const index = state.steps.findIndex((s) => s.step === frame.step);
  const steps = state.steps.slice();
  if (index === -1) steps.push({ step: frame.step, state: stepState, seenAt: now, elapsedMs, details });
  else steps[index] = { ...steps[index]!, state: stepState, elapsedMs, details: details ?? steps[index]!.details };
  return { steps };
}

/** 850 ms, 1.2 s, 12.3 s, 2 m 05 s. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, '0')} s`;
}

export interface Palette {
  green(text: string): string;
  red(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

const sgr = (code: string) => (text: string) => `\x1b[${code}m${text}\x1b[0m`;
export const COLORS: Palette = { green: sgr('32'), red: sgr('31'), dim: sgr('2'), bold: sgr('1') };
export const PLAIN: Palette = { green: (t) => t, red: (t) => t, dim: (t) => t, bold: (t) => t };

/** Colour only on a terminal, and never when NO_COLOR is set (no-color.org) or TERM=dumb. */
export function paletteFor(isTTY: boolean, env: NodeJS.ProcessEnv): Palette {
  return isTTY && !env.NO_COLOR && env.TERM !== 'dumb' ? COLORS : PLAIN;
}

/** The reason a failed step gives, found where status details usually carry it. */
export function failureReason(details: Record<string, unknown> | null): string | null {
  if (!details) return null;
  const error = details.error;
  if (typeof error === 'string') return error;
  if (error && typeof error === 'object' && typeof (error as { message?: unknown }).message === 'string') {
    const e = error as { code?: unknown; message: string };
    return typeof e.code === 'string' ? `${e.code}: ${e.message}` : e.message;
  }
  if (typeof details.message === 'string') return details.message;
  if (typeof details.reason === 'string') return details.reason;
  return null;
}

/** The step lines as they should look at `now`; `tick` picks the spinner frame. */
export function renderSteps(state: LiveState, now: number, tick: number, palette: Palette = PLAIN): string[] {
  const width = Math.max(0, ...state.steps.map((s) => s.step.length));
  return state.steps.map((s) => {
    const name = s.step.padEnd(width);
    if (s.state === 'running') {
      const spinner = SPINNER_FRAMES[((tick % SPINNER_FRAMES.length) + SPINNER_FRAMES.length) % SPINNER_FRAMES.length]!;
      return `${spinner} ${name}  ${palette.dim(formatDuration(Math.max(0, now - s.seenAt)))}`;
    }
    const duration = formatDuration(s.elapsedMs ?? Math.max(0, now - s.seenAt));
    if (s.state === 'done') return `${palette.green(TICK)} ${name}  ${palette.dim(duration)}`;
    const reason = failureReason(s.details);
    return `${palette.red(CROSS)} ${name}  ${palette.dim(duration)}${reason ? '  ' + palette.red(reason) : ''}`;
  });
}

/**
 * Text that replaces the previously drawn block of `previousLines` lines with `lines`: cursor up to the
 * block's first line, then each line cleared and rewritten. The cursor ends below the block.
 */
export function redraw(previousLines: number, lines: readonly string[]): string {
  const up = previousLines > 0 ? `\x1b[${previousLines}A` : '';
  return up + lines.map((l) => `\r\x1b[2K${l}\n`).join('');
}

export interface SessionResultView {
  id?: unknown;
  location?: { host?: unknown; port?: unknown } | null;
  network?: unknown;
  containers?: Array<{ id?: unknown; name?: unknown; role?: unknown }>;
  probe?: unknown;
}

/** The lines after the steps once session.create succeeded: where to connect first, then what runs. */
export function renderResult(result: SessionResultView, palette: Palette = PLAIN): string[] {
  const lines: string[] = [];
  const loc = result.location;
  if (loc && loc.host !== undefined && loc.port !== undefined) {
    const host = String(loc.host);
    lines.push(`${palette.bold('location')}  ${host.includes(':') ? `[${host}]` : host}:${String(loc.port)}`);
  }
  if (result.id !== undefined) lines.push(`session   ${String(result.id)}`);
  const network = result.network as { name?: unknown; subnet?: unknown } | string | undefined;
  if (typeof network === 'string') lines.push(`network   ${network}`);
  else if (network && typeof network === 'object' && network.name !== undefined) {
    lines.push(`network   ${String(network.name)}${network.subnet !== undefined ? ` (${String(network.subnet)})` : ''}`);
  }
  for (const c of result.containers ?? []) {
    lines.push(`${String(c.role ?? 'container').padEnd(9)} ${String(c.name ?? '')}  ${palette.dim(String(c.id ?? '').slice(0, 12))}`);
  }
  return lines;
}

/** One stderr line for a failed command: the wire code first, so scripts and people can grep for it. */
export function renderError(err: { code?: unknown; message?: unknown }): string {
  const code = typeof err.code === 'string' ? err.code : 'INTERNAL';
  return `error ${code}: ${typeof err.message === 'string' ? err.message : String(err.message)}`;
}

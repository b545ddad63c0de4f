/**
 * The workflow engine: steps with dependencies, run as soon as their dependencies are done (independent steps
 * concurrently), each reported as status frames. Any failure or cancel stops new steps, lets the running ones
 * settle (a create in flight may still succeed on the engine's side and must be undone), then undoes every
 * completed step in reverse order of completion, each undo reported as a step too. So a workflow ends either
 * with every step done or with everything it made removed.
 */
import { EdgeechoError, type WireError } from '../../protocol/errors.js';

export type StepState = 'started' | 'done' | 'failed';

export interface StepStatus {
  step: string;
  state: StepState;
  /** ms since the workflow began */
  elapsed_ms: number;
  /** ms the step itself took (done/failed only) */
  duration_ms?: number;
  details?: Record<string, unknown>;
  error?: WireError;
}

export interface StepContext {
  /** Aborted on cancel and as soon as another step fails. */
  readonly signal: AbortSignal;
  /** The value a completed step returned; throws for a step not done (a missing dependency is a bug). */
  result<T>(step: string): T;
}

export interface Step<T = unknown> {
  name: string;
  /** Steps that must be done before this one starts. */
  after?: readonly string[];
  run(ctx: StepContext): Promise<T>;
  /** Status details of the done frame. */
  details?(value: T): Record<string, unknown> | undefined;
  /** Undoes what run made; reported as step `rollback:<undo.name>`. */
  undo?: { name: string; run(value: T): Promise<void> };
}

export interface WorkflowOptions {
  signal?: AbortSignal;
  onStatus?: (status: StepStatus) => void;
  /** ms clock; injectable for tests */
  now?: () => number;
}

export interface RollbackReport {
  step: string;
  error: WireError;
}

/** Thrown when a workflow did not finish; `cause` is the first failure, everything done was undone. */
export class WorkflowError extends EdgeechoError {
  constructor(
    readonly failure: EdgeechoError,
    readonly failedStep: string | null,
    readonly rollbackFailures: RollbackReport[],
  ) {
    const details: Record<string, unknown> = { ...failure.details };
    if (failedStep) details.step = failedStep;
    if (rollbackFailures.length) details.rollback_failures = rollbackFailures;
    super(failure.code, failedStep ? `step ${failedStep}: ${failure.message}` : failure.message, details, { cause: failure });
  }
}

function validate(steps: readonly Step<any>[]): void {
  const names = new Set<string>();
  for (const step of steps) {
    if (names.has(step.name)) throw new Error(`workflow step "${step.name}" is defined twice`);
    names.add(step.name);
  }
  for (const step of steps) {
    for (const dep of step.after ?? []) {
      if (!names.has(dep)) throw new Error(`workflow step "${step.name}" depends on unknown step "${dep}"`);
    }
  }
  // Kahn's order: what remains after it is a cycle
  const remaining = new Map(steps.map((s) => [s.name, new Set(s.after ?? [])]));
  let progress = true;
  while (progress && remaining.size) {
    progress = false;
    for (const [name, deps] of remaining) {
      if ([...deps].every((d) => !remaining.has(d))) {
        remaining.delete(name);
        progress = true;
      }
    }
  }
  if (remaining.size) throw new Error(`workflow steps ${[...remaining.keys()].join(', ')} depend on each other in a cycle`);
}

/** Runs the steps; resolves with each step's value by name, or throws WorkflowError after rolling back. */
export async function runWorkflow(steps: readonly Step<any>[], options: WorkflowOptions = {}): Promise<Map<string, unknown>> {
  validate(steps);
  const now = options.now ?? (() => performance.now());
  const began = now();
  const emit = (status: StepStatus): void => {
    try {
      options.onStatus?.(status);
    } catch {
      // a reporting failure (e.g. a closed connection) must not change the workflow's outcome
    }
  };
  const elapsed = (): number => Math.round(now() - began);

  let wake: (() => void) | null = null;
  const inner = new AbortController();
  const onOuterAbort = (): void => inner.abort(options.signal?.reason);
  if (options.signal?.aborted) inner.abort(options.signal.reason);
  else options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  inner.signal.addEventListener('abort', () => wake?.(), { once: true });

  const values = new Map<string, unknown>();
  const completed: Step<any>[] = [];
  const pending = new Map(steps.map((s) => [s.name, s]));
  const running = new Map<string, Promise<void>>();
  let failure: { error: EdgeechoError; step: string | null } | null = null;

  const ctx: StepContext = {
    signal: inner.signal,
    result<T>(step: string): T {
      if (!values.has(step)) throw new Error(`workflow step "${step}" has no result yet; declare it in "after"`);
      return values.get(step) as T;
    },
  };

  const fail = (error: unknown, step: string | null): void => {
    if (!failure) failure = { error: EdgeechoError.from(error), step };
    inner.abort(failure.error);
  };

  const launch = (step: Step<any>): void => {
    pending.delete(step.name);
    const started = now();
    emit({ step: step.name, state: 'started', elapsed_ms: elapsed() });
    let settled = false;
    const done = (async () => {
      try {
        const value = await step.run(ctx);
        values.set(step.name, value);
        completed.push(step);
        const status: StepStatus = { step: step.name, state: 'done', elapsed_ms: elapsed(), duration_ms: Math.round(now() - started) };
        const details = step.details?.(value);
        if (details) status.details = details;
        emit(status);
      } catch (err) {
        // a step failing because another one failed first is reported, but the first failure stays the cause
        const error = EdgeechoError.from(err);
        emit({ step: step.name, state: 'failed', elapsed_ms: elapsed(), duration_ms: Math.round(now() - started), error: error.toWire() });
        fail(error, step.name);
      } finally {
        settled = true;
        running.delete(step.name);
        wake?.();
      }
    })();
    // A run that throws synchronously has settled already; entering it now would leave it running forever.
    if (!settled) running.set(step.name, done);
  };

  try {
    while (pending.size || running.size) {
      if (inner.signal.aborted && !failure) {
        fail(new EdgeechoError('CANCELLED', 'workflow was cancelled'), null);
      }
      if (!failure) {
        for (const step of [...pending.values()]) {
          if ((step.after ?? []).every((d) => values.has(d))) launch(step);
        }
      }
      if (!running.size) break;
      if (failure) {
        await Promise.all(running.values());
        continue;
      }
      // woken when a step settles or the signal aborts
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
    if (!failure && options.signal?.aborted && pending.size) {
      fail(new EdgeechoError('CANCELLED', 'workflow was cancelled'), null);
    }
    if (!failure) return values;
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort);
  }

  const rollbackFailures: RollbackReport[] = [];
  for (const step of [...completed].reverse()) {
    if (!step.undo) continue;
    const name = `rollback:${step.undo.name}`;
    const started = now();
    emit({ step: name, state: 'started', elapsed_ms: elapsed() });
    try {
      await step.undo.run(values.get(step.name));
      emit({ step: name, state: 'done', elapsed_ms: elapsed(), duration_ms: Math.round(now() - started) });
    } catch (err) {
      const error = EdgeechoError.from(err).toWire();
      rollbackFailures.push({ step: name, error });
      emit({ step: name, state: 'failed', elapsed_ms: elapsed(), duration_ms: Math.round(now() - started), error });
    }
  }
  const { error, step } = failure as { error: EdgeechoError; step: string | null };
  throw new WorkflowError(error, step, rollbackFailures);
}

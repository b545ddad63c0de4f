import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runWorkflow, WorkflowError, type Step, type StepStatus } from '../../src/workflow/engine.js';
import { EdgeechoError } from '../../protocol/errors.js';

interface Gate {
  promise: Promise<void>;
  open(): void;
}
function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Steps that log what ran and what was undone. */
function recorder() {
  const log: string[] = [];
  const step = (name: string, after: string[] = [], run?: () => Promise<unknown>): Step => ({
    name,
    after,
    run: async () => {
      log.push(`run ${name}`);
      return run ? run() : name;
    },
    undo: { name: `undo ${name}`, run: async (value) => void log.push(`undo ${name} ${String(value)}`) },
  });
  return { log, step };
}

test('runs steps after their dependencies and returns each value', async () => {
  const { log, step } = recorder();
  const statuses: StepStatus[] = [];
  const values = await runWorkflow([step('c', ['b']), step('a'), step('b', ['a'])], { onStatus: (s) => statuses.push(s) });
  assert.equal(log, ['run a', 'run b', 'run c']);
  assert.equal([...values.keys()].sort(), ['a', 'b', 'c']);
  assert.equal(
    statuses.map((s) => `${s.step}:${s.state}`),
    ['a:started', 'a:done', 'b:started', 'b:done', 'c:started', 'c:done'],
  );
  assert.ok(statuses.every((s) => typeof s.elapsed_ms === 'number'));
});

test('independent steps run concurrently', async () => {
  const { step } = recorder();
  const g = gate();
  let inFlight = 0;
  let peak = 0;
  const slow = async (): Promise<void> => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await g.promise;
    inFlight--;
  };
  const run = runWorkflow([step('net'), step('x', ['net'], slow), step('y', ['net'], slow), step('z', ['net'], slow), step('end', ['x', 'y', 'z'])]);
  for (let i = 0; i < 5; i++) await tick();
  assert.is(peak, 3);
  g.open();
  await run;
});

test('done frames carry the step details; the result of a dependency is readable', async () => {
  const statuses: StepStatus[] = [];
  const steps: Step<any>[] = [
    { name: 'probe', run: async () => ({ count: 5 }), details: (v: { count: number }) => ({ probe: v }) },
    { name: 'stream', after: ['probe'], run: async (ctx) => ctx.result<{ count: number }>('probe').count * 2 },
  ];
  const values = await runWorkflow(steps, { onStatus: (s) => statuses.push(s) });
  assert.is(values.get('stream'), 10);
  assert.equal(statuses.find((s) => s.step === 'probe' && s.state === 'done')?.details, { probe: { count: 5 } });
});

for (const failing of ['a', 'b', 'c', 'd']) {
  test(`failure at step ${failing} undoes every completed step in reverse and reports it`, async () => {
    const { log, step } = recorder();
    const statuses: StepStatus[] = [];
    const boom = async (): Promise<never> => {
      throw new EdgeechoError('CONFLICT', `${failing} conflicts`);
    };
    const steps = [step('a'), step('b', ['a']), step('c', ['b']), step('d', ['c'])].map((s) => (s.name === failing ? { ...s, run: boom } : s));
    try {
      await runWorkflow(steps, { onStatus: (s) => statuses.push(s) });
      assert.unreachable('expected a failure');
    } catch (err) {
      assert.instance(err, WorkflowError);
      const e = err as WorkflowError;
      assert.is(e.code, 'CONFLICT');
      assert.is(e.failedStep, failing);
      assert.match(e.message, `step ${failing}: ${failing} conflicts`);
    }
    const order = ['a', 'b', 'c', 'd'];
    const done = order.slice(0, order.indexOf(failing));
    assert.equal(
      log.filter((l) => l.startsWith('undo')),
      [...done].reverse().map((n) => `undo ${n} ${n}`),
    );
    assert.ok(statuses.some((s) => s.step === failing && s.state === 'failed' && s.error?.code === 'CONFLICT'));
    assert.equal(
      statuses.filter((s) => s.step.startsWith('rollback:') && s.state === 'done').map((s) => s.step),
      [...done].reverse().map((n) => `rollback:undo ${n}`),
    );
  });
}

test('a failure waits for concurrent steps to settle and undoes them too', async () => {
  const { log, step } = recorder();
  const g = gate();
  const run = runWorkflow([
    step('net'),
    step('create x', ['net'], async () => {
      await g.promise; // e.g. a create that the engine finishes anyway
      return 'x-id';
    }),
    step('create y', ['net'], async () => {
      throw new Error('no such image');
    }),
  ]);
  for (let i = 0; i < 5; i++) await tick();
  assert.not.ok(log.some((l) => l.startsWith('undo')), 'rollback must wait for the running create');
  g.open();
  await run.then(
    () => assert.unreachable(),
    (err: WorkflowError) => assert.is(err.code, 'INTERNAL'),
  );
  assert.equal(log.filter((l) => l.startsWith('undo')), ['undo create x x-id', 'undo net net']);
});

test('cancel mid-run stops new steps, aborts waits and rolls back', async () => {
  const { log, step } = recorder();
  const controller = new AbortController();
  let sawAbort = false;
  const statuses: StepStatus[] = [];
  const waitReady: Step = {
    name: 'ready',
    after: ['create'],
    run: (ctx) =>
      new Promise((_, reject) =>
        ctx.signal.addEventListener('abort', () => {
          sawAbort = true;
          reject(new EdgeechoError('CANCELLED', 'waiting: cancelled'));
        }),
      ),
  };
  const run = runWorkflow([step('net'), step('create', ['net']), waitReady, step('location', ['ready'])], {
    signal: controller.signal,
    onStatus: (s) => statuses.push(s),
  });
  for (let i = 0; i < 5; i++) await tick();
  controller.abort();
  const err = await run.then(
    () => null,
    (e: WorkflowError) => e,
  );
  assert.ok(err);
  assert.is(err!.code, 'CANCELLED');
  assert.ok(sawAbort);
  assert.not.ok(log.includes('run location'));
  assert.equal(log.filter((l) => l.startsWith('undo')), ['undo create create', 'undo net net']);
  assert.ok(statuses.some((s) => s.step === 'rollback:undo net' && s.state === 'done'));
});

test('an already aborted signal runs nothing', async () => {
  const { log, step } = recorder();
  const err = await runWorkflow([step('a')], { signal: AbortSignal.abort() }).then(
    () => null,
    (e: WorkflowError) => e,
  );
  assert.is(err?.code, 'CANCELLED');
  assert.equal(log, []);
});

test('a failing undo is reported and the rest still rolls back', async () => {
  const { log, step } = recorder();
  const broken = { ...step('b', ['a']), undo: { name: 'undo b', run: async () => Promise.reject(new Error('engine gone')) } };
  const err = await runWorkflow([step('a'), broken, step('c', ['b'], async () => Promise.reject(new Error('fail c')))]).then(
    () => null,
    (e: WorkflowError) => e,
  );
  assert.equal(log.filter((l) => l.startsWith('undo')), ['undo a a']);
  assert.equal(err?.rollbackFailures.map((r) => r.step), ['rollback:undo b']);
  assert.equal((err?.details?.rollback_failures as unknown[]).length, 1);
});

test('refuses unknown dependencies and cycles before running anything', async () => {
  const { log, step } = recorder();
  await runWorkflow([step('a', ['nope'])]).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, 'unknown step "nope"'),
  );
  await runWorkflow([step('a', ['b']), step('b', ['a'])]).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, 'cycle'),
  );
  assert.equal(log, []);
});

test('a throwing status callback does not change the outcome', async () => {
  const { step } = recorder();
  const values = await runWorkflow([step('a')], {
    onStatus: () => {
      throw new Error('socket closed');
    },
  });
  assert.is(values.get('a'), 'a');
});

test('a step whose run throws synchronously fails the workflow instead of hanging it', () => {
  // In a child process: a regression spins on microtasks, which no timer in this process could interrupt.
  const engine = new URL('../../src/workflow/engine.ts', import.meta.url).href;
  const code = `const { runWorkflow } = await import(${JSON.stringify(engine)});
const undone = [];
const steps = [
  { name: 'a', run: async () => 1, undo: { name: 'undo a', run: async () => void undone.push('a') } },
  { name: 'b', after: ['a'], run: (ctx) => ctx.result('c') },
];
const err = await runWorkflow(steps).then(() => null, (e) => e);
process.stdout.write(JSON.stringify({ message: err && err.message, undone }));`;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { timeout: 20_000, encoding: 'utf8' });
  assert.is(child.signal, null, 'the workflow hung (the child was killed at the 20 s timeout)');
  assert.is(child.status, 0, child.stderr);
  const out = JSON.parse(child.stdout) as { message: string; undone: string[] };
  assert.match(out.message, 'step b: workflow step "c" has no result yet');
  assert.equal(out.undone, ['a']);
});

test.run();

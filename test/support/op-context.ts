/** An OpContext for calling op handlers directly: records status frames, has its own AbortController. */
import type { OpContext, OpDefinition } from '../../src/ops/contract.js';
import { validateArgs } from '../../src/ops/contract.js';
import { silentLogger } from '../../src/log.js';

export interface RecordingContext extends OpContext {
  statuses: Array<Record<string, unknown>>;
  controller: AbortController;
}

export function opContext(id: number | string = 1): RecordingContext {
  const controller = new AbortController();
  const statuses: Array<Record<string, unknown>> = [];
  return {
    id,
    signal: controller.signal,
    log: silentLogger,
    conn: { id: 'test', peer: 'test' },
    status: (fields) => void statuses.push(fields),
    event: () => {},
    statuses,
    controller,
  };
}

/** Validates args as the connection would, then runs the handler. */
export async function callOp(ops: OpDefinition<any>[], name: string, args: Record<string, unknown>, ctx: OpContext = opContext()): Promise<any> {
  const op = ops.find((o) => o.name === name);
  if (!op) throw new Error(`no op ${name}`);
  return op.handler(validateArgs(op.args, args, op.allowExtraArgs), ctx);
}

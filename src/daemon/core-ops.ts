/**
 * The core ops every connection speaks: hello, ping, cancel. hello and cancel act on the connection itself (the
 * hello gate, the in-flight table), so the connection runs them through the small `CoreControl` seam below;
 * their definitions live here so they are listed and validated like every other op.
 */
import { EdgeechoError } from '../../protocol/errors.js';
import { chooseProtocol, SUPPORTED_PROTOCOLS, type RequestId } from '../../protocol/messages.js';
import type { OpContext, OpDefinition, OpRegistry } from '../ops/contract.js';

export interface HelloArgs {
  client: string;
  protocol: number;
  token?: string;
}

export interface HelloResult {
  server: 'edgeecho';
  version: string;
  protocol: number;
  conn: string;
  /** The daemon's instance id (its objects carry io.edgeecho.instance=<id>); absent when it drives no runtime. */
  instance?: string;
}

/** What hello and cancel need from the connection they arrive on. */
export interface CoreControl {
  hello(args: HelloArgs): Promise<HelloResult>;
  /** Aborts the target if it is in flight; false when it is not (finished already, or never sent). */
  cancel(target: RequestId): boolean;
}

/** The version hello asked for, when this build speaks it; anything else means no version in common. */
export function helloProtocol(requested: number, supported: readonly number[] = SUPPORTED_PROTOCOLS): number {
  const protocol = chooseProtocol([requested], supported);
  if (protocol !== null) return protocol;
  throw new EdgeechoError(
    'UNSUPPORTED_PROTOCOL',
    `protocol ${requested} is not supported; this daemon speaks ${supported.join(', ')} (pick the highest version both sides list)`,
    { requested, supported: [...supported] },
  );
}

type CoreContext = OpContext & { readonly control?: CoreControl };

function controlOf(ctx: OpContext): CoreControl {
  const control = (ctx as CoreContext).control;
  if (!control) throw new EdgeechoError('INTERNAL', 'core op run outside a connection');
  return control;
}

export const helloOp: OpDefinition<HelloArgs> = {
  name: 'hello',
  summary: 'start the session: name the client, pick the protocol version, present a token when the daemon asks for one',
  args: {
    client: { type: 'string', required: true, minLength: 1, maxLength: 128 },
    protocol: { type: 'int', required: true, min: 0, max: 0xffff_ffff },
    token: { type: 'string', minLength: 1, maxLength: 4096 },
  },
  beforeHello: true,
  handler: (args, ctx) => controlOf(ctx).hello(args),
};

export const pingOp: OpDefinition<Record<string, never>> = {
  name: 'ping',
  summary: 'liveness and keepalive: answers {pong: true, time} (allowed before hello)',
  args: {},
  beforeHello: true,
  handler: async () => pingResult(),
};

export const cancelOp: OpDefinition<{ target: RequestId }> = {
  name: 'cancel',
  summary: 'cancel a request in flight on this connection; its terminal frame becomes error CANCELLED',
  args: { target: { type: 'id', required: true } },
  handler: async (args, ctx) => ({ cancelled: controlOf(ctx).cancel(args.target) }),
};

export function pingResult(now = Date.now()): { pong: true; time: number } {
  return { pong: true, time: now };
}

export const CORE_OPS: readonly OpDefinition<any>[] = [helloOp, pingOp, cancelOp];

/** Adds the core ops to a registry (for listing; the connection answers them itself). The Daemon does it for its registry. */
export function registerCoreOps(registry: OpRegistry): OpRegistry {
  for (const op of CORE_OPS) if (!registry.get(op.name)) registry.register(op);
  return registry;
}

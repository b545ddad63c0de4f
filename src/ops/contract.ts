/**
 * The op contract: the seam between the connection and everything behind it (the session lifecycle, resources).
 * Each op declares an argument schema, validated before its handler runs, and an async handler
 * that may emit status frames and must honour its AbortSignal.
 */
import type { Logger } from 'pino';
import { EdgeechoError } from '../../protocol/errors.js';
import { describe, type RequestId } from '../../protocol/messages.js';

export type FieldSpec =
  | { type: 'string'; required?: boolean; minLength?: number; maxLength?: number; pattern?: RegExp }
  | { type: 'int'; required?: boolean; min?: number; max?: number }
  | { type: 'number'; required?: boolean; min?: number; max?: number }
  | { type: 'boolean'; required?: boolean }
  | { type: 'enum'; required?: boolean; values: readonly string[] }
  | { type: 'id'; required?: boolean };

export type ArgSchema = Record<string, FieldSpec>;

export interface OpContext {
  /** The request id, echoed on every frame answering it. */
  readonly id: RequestId;
  /** Aborted on `cancel`, on disconnect (unless the op is detached) and at the shutdown deadline. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  readonly conn: { readonly id: string; readonly peer: string; readonly client?: string };
  /** Sends `{id, kind: "status", ...fields}`; a no-op once the connection is gone. */
  status(fields: Record<string, unknown>): void;
  /** Sends a server-initiated `{kind: "event", topic, data}` on this connection. */
  event(topic: string, data: unknown): void;
}

export interface OpDefinition<A = Record<string, unknown>> {
  name: string;
  /** One line for `edgeecho cat`'s help and the README. */
  summary: string;
  args: ArgSchema;
  /** Ops that run before hello succeeds (only hello and ping by design). */
  beforeHello?: boolean;
  /** Unknown argument fields are refused unless this is true. */
  allowExtraArgs?: boolean;
  /**
   * The handler keeps running when its client disconnects (its frames are dropped): for work that must reach
   * a consistent end, like session.create. It is still aborted by cancel and at the shutdown deadline.
   */
  detached?: boolean;
  handler(args: A, ctx: OpContext): Promise<unknown>;
}

export class OpRegistry {
  private readonly ops = new Map<string, OpDefinition<any>>();

  register<A>(op: OpDefinition<A>): this {
    if (this.ops.has(op.name)) throw new Error(`op ${op.name} is registered twice`);
    this.ops.set(op.name, op);
    return this;
  }

  get(name: string): OpDefinition<any> | undefined {
    return this.ops.get(name);
  }

  names(): string[] {
    return [...this.ops.keys()].sort();
  }
}

/** Validates args against a schema; the error names the field, what was expected and what came. */
export function validateArgs<A>(schema: ArgSchema, args: Record<string, unknown> | undefined, allowExtra = false): A {
  const input = args ?? {};
  if (!allowExtra) {
    for (const key of Object.keys(input)) {
      if (!(key in schema)) {
        throw new EdgeechoError('BAD_REQUEST', `args.${key}: unknown field; expected one of ${Object.keys(schema).join(', ') || '(none)'}`, { field: key });
      }
    }
  }
  const out: Record<string, unknown> = allowExtra ? { ...input } : {};
  for (const [field, spec] of Object.entries(schema)) {
    const value = input[field];
    if (value === undefined || value === null) {
      if (spec.required) throw new EdgeechoError('BAD_REQUEST', `args.${field}: required ${expected(spec)} is missing`, { field });
      continue;
    }
    const problem = check(spec, value);
    if (problem) throw new EdgeechoError('BAD_REQUEST', `args.${field}: expected ${problem}, got ${describe(value)}`, { field });
    out[field] = value;
  }
  return out as A;
}

function expected(spec: FieldSpec): string {
  switch (spec.type) {
    case 'string':
      return `string of ${spec.minLength ?? 0}..${spec.maxLength ?? '∞'} characters${spec.pattern ? ` matching ${spec.pattern}` : ''}`;
    case 'int':
      return `integer in ${spec.min ?? '-∞'}..${spec.max ?? '∞'}`;
    case 'number':
      return `number in ${spec.min ?? '-∞'}..${spec.max ?? '∞'}`;
    case 'boolean':
      return 'boolean';
    case 'enum':
      return `one of ${spec.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'id':
      return 'request id (unsigned integer or string)';
  }
}

function check(spec: FieldSpec, value: unknown): string | null {
  const ok = (() => {
    switch (spec.type) {
      case 'string':
        return (
          typeof value === 'string' &&
          value.length >= (spec.minLength ?? 0) &&
          value.length <= (spec.maxLength ?? Infinity) &&
          (!spec.pattern || spec.pattern.test(value))
        );
      case 'int':
        return Number.isSafeInteger(value) && (value as number) >= (spec.min ?? -Infinity) && (value as number) <= (spec.max ?? Infinity);
      case 'number':
        return typeof value === 'number' && Number.isFinite(value) && value >= (spec.min ?? -Infinity) && value <= (spec.max ?? Infinity);
      case 'boolean':
        return typeof value === 'boolean';
      case 'enum':
        return typeof value === 'string' && spec.values.includes(value);
      case 'id':
        return (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) || (typeof value === 'string' && value.length > 0 && value.length <= 128);
    }
  })();
  return ok ? null : expected(spec);
}

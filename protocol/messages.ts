/** Shapes of control frames. protocol/SPEC.md is the contract; these types mirror it. */
import { EdgeechoError, type WireError } from './errors.js';

export const PROTOCOL_VERSION = 1;
/** Versions this build can speak, newest first. */
export const SUPPORTED_PROTOCOLS: readonly number[] = [1];

export type RequestId = number | string;

/**
 * The version two sides speak: the highest one both list, or null when they share none. `theirs` is what the other
 * side offers: a greeting (its `protocols`, or its single `protocol` from a daemon that sends no list) or a list
 * (the daemon passes the one version hello asked for).
 */
export function chooseProtocol(theirs: readonly number[] | { protocol: number; protocols?: readonly number[] }, ours: readonly number[] = SUPPORTED_PROTOCOLS): number | null {
  const offered = Array.isArray(theirs) ? theirs : offeredProtocols(theirs as { protocol: number; protocols?: readonly number[] });
  const common = ours.filter((v) => offered.includes(v));
  return common.length ? Math.max(...common) : null;
}

function offeredProtocols(greeting: { protocol: number; protocols?: readonly number[] }): readonly number[] {
  return Array.isArray(greeting.protocols) ? greeting.protocols : [greeting.protocol];
}

export interface Request {
  id: RequestId;
  op: string;
  args?: Record<string, unknown>;
}

export interface Greeting {
  kind: 'hello';
  server: 'edgeecho';
  version: string;
  protocol: number;
  protocols: number[];
  auth: string[];
  max_frame: number;
}

export interface StatusFrame {
  id: RequestId;
  kind: 'status';
  [field: string]: unknown;
}

export interface ResultFrame {
  id: RequestId;
  kind: 'result';
  data: unknown;
}

export interface ErrorFrame {
  id: RequestId | null;
  kind: 'error';
  error: WireError;
}

export interface EventFrame {
  kind: 'event';
  topic: string;
  data: unknown;
}

export type ServerFrame = Greeting | StatusFrame | ResultFrame | ErrorFrame | EventFrame;

/** Ids are unsigned integers or non-empty strings of at most 128 characters (Unicode code points, not UTF-16 units). */
export const MAX_ID_CHARS = 128;

/** True when the string has 1..max code points; stops counting past max, so a huge string costs no more than max steps. */
function codePointsWithin(s: string, max: number): boolean {
  if (s.length === 0) return false;
  if (s.length <= max) return true;
  let n = 0;
  for (const _ of s) if (++n > max) return false;
  return true;
}

export function isRequestId(value: unknown): value is RequestId {
  return (
    (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) ||
    (typeof value === 'string' && codePointsWithin(value, MAX_ID_CHARS))
  );
}

/**
 * Checks that a decoded frame is a request. Returns the request or an error that carries the id when
 * one could be read, so the error frame can still answer it.
 */
export function parseRequest(value: unknown): { ok: true; request: Request } | { ok: false; id: RequestId | null; error: EdgeechoError } {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || ArrayBuffer.isView(value)) {
    return { ok: false, id: null, error: new EdgeechoError('BAD_FRAME', `expected a request map {id, op, args?}, got ${describe(value)}`) };
  }
  const map = value as Record<string, unknown>;
  const id = isRequestId(map.id) ? map.id : null;
  if (id === null) {
    return {
      ok: false,
      id: null,
      error: new EdgeechoError('BAD_REQUEST', `field "id": expected an unsigned integer or a string of 1..${MAX_ID_CHARS} characters, got ${describe(map.id)}`, { field: 'id' }),
    };
  }
  if (typeof map.op !== 'string' || map.op.length === 0) {
    return { ok: false, id, error: new EdgeechoError('BAD_REQUEST', `field "op": expected a non-empty string, got ${describe(map.op)}`, { field: 'op' }) };
  }
  const args = map.args;
  if (args !== undefined && args !== null && (typeof args !== 'object' || Array.isArray(args) || ArrayBuffer.isView(args))) {
    return { ok: false, id, error: new EdgeechoError('BAD_REQUEST', `field "args": expected a map, got ${describe(args)}`, { field: 'args' }) };
  }
  const request: Request = { id, op: map.op };
  if (args) request.args = args as Record<string, unknown>;
  return { ok: true, request };
}

export function describe(value: unknown): string {
  if (value === null) return 'nil';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (ArrayBuffer.isView(value)) return 'binary';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  return `${typeof value} ${String(value)}`;
}

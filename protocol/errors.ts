/**
 * The one table of error codes. The same codes travel on the wire in error frames, appear in logs
 * and are thrown as EdgeechoError.
 */
export const ERROR_CODES = {
  BAD_FRAME: 'frame body is not a valid msgpack request map, or the frame length is 0',
  FRAME_TOO_LARGE: 'frame length exceeds max_frame',
  BAD_REQUEST: 'request or its arguments do not match the op schema',
  UNKNOWN_OP: 'no op by that name',
  UNAUTHENTICATED: 'hello has not succeeded, or the credentials were refused',
  NOT_FOUND: 'the named object does not exist',
  CONFLICT: 'the request conflicts with current state (e.g. a duplicate in-flight id)',
  RESOURCE_EXHAUSTED: 'a limit or the node capacity would be exceeded',
  RUNTIME_UNAVAILABLE: 'the container runtime (Docker engine) cannot be reached or refused the call',
  TIMEOUT: 'the operation did not finish within its deadline',
  CANCELLED: 'the request was cancelled',
  SHUTTING_DOWN: 'the daemon is shutting down and takes no new requests',
  UNSUPPORTED_PROTOCOL: 'no protocol version in common',
  INTERNAL: 'an unexpected error inside the daemon',
  CONNECTION_CLOSED: 'client side only, never sent: the connection failed or closed before the answer came',
  DATA_LOSS: 'client side only, never sent: a stream read at a session location missed, reordered or corrupted frames',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}

export interface WireError {
  code: ErrorCode | string;
  message: string;
  details?: Record<string, unknown>;
}

export class EdgeechoError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EdgeechoError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }

  toWire(): WireError {
    const wire: WireError = { code: this.code, message: this.message };
    if (this.details !== undefined) wire.details = this.details;
    return wire;
  }

  /** A peer may send codes newer than this table; they keep their text but are typed INTERNAL locally. */
  static fromWire(wire: WireError): EdgeechoError {
    const code = isErrorCode(wire.code) ? wire.code : 'INTERNAL';
    const details = code === wire.code ? wire.details : { ...wire.details, wire_code: wire.code };
    return new EdgeechoError(code, wire.message, details);
  }

  /** Wraps anything thrown into an EdgeechoError; unknown errors become INTERNAL with their message kept. */
  static from(err: unknown): EdgeechoError {
    if (err instanceof EdgeechoError) return err;
    if (err instanceof Error && err.name === 'AbortError') {
      return new EdgeechoError('CANCELLED', 'request was cancelled', undefined, { cause: err });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new EdgeechoError('INTERNAL', message, undefined, { cause: err });
  }
}

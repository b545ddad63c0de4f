/** Maps what dockerode throws onto the error table, so nothing above the driver sees Docker's error shapes. */
import { EdgeechoError } from '../../../protocol/errors.js';

interface DockerodeError {
  statusCode?: number;
  code?: string;
  reason?: string;
  json?: { message?: string } | null;
  message?: string;
  name?: string;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH']);

/** The engine's own message when it sent one, else the transport's. */
export function dockerMessage(err: unknown): string {
  const e = err as DockerodeError;
  const fromJson = e?.json?.message;
  if (typeof fromJson === 'string' && fromJson) return fromJson;
  return e?.message ?? String(err);
}

/** `what` names the call, e.g. `create container edgeecho-x-probe`. */
export function mapDockerError(err: unknown, what: string): EdgeechoError {
  if (err instanceof EdgeechoError) return err;
  const e = err as DockerodeError;
  const message = dockerMessage(err);
  if (e?.name === 'AbortError' || e?.code === 'ABORT_ERR') {
    return new EdgeechoError('CANCELLED', `${what}: cancelled`, undefined, { cause: err });
  }
  const details: Record<string, unknown> = { call: what };
  if (e?.statusCode !== undefined) details.status = e.statusCode;
  switch (e?.statusCode) {
    case 404:
      return new EdgeechoError('NOT_FOUND', `${what}: ${message}`, details, { cause: err });
    case 409:
      return new EdgeechoError('CONFLICT', `${what}: ${message}`, details, { cause: err });
    case 400:
      return new EdgeechoError('BAD_REQUEST', `${what}: the engine refused the request: ${message}`, details, { cause: err });
  }
  if (e?.code && UNREACHABLE.has(e.code)) {
    details.errno = e.code;
    return new EdgeechoError('RUNTIME_UNAVAILABLE', `${what}: the Docker engine cannot be reached (${e.code}; EDGEECHO_DOCKER_SOCKET): ${message}`, details, { cause: err });
  }
  return new EdgeechoError('RUNTIME_UNAVAILABLE', `${what}: the Docker engine refused the call: ${message}`, details, { cause: err });
}

export function isStatus(err: unknown, status: number): boolean {
  return (err as DockerodeError)?.statusCode === status || (err instanceof EdgeechoError && err.details?.status === status);
}

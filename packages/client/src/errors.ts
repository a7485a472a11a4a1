import { status as GrpcStatus } from '@grpc/grpc-js';

/** A gateway response or event whose signature could not be verified (unknown key id or bad signature). */
export class GatewaySignatureError extends Error {
  override readonly name = 'GatewaySignatureError';
}

/**
 * A correctly signed message that is not bound to this client: another user or device
 * session, another request id, or a bootstrap out of place.
 */
export class GatewayBindingError extends Error {
  override readonly name = 'GatewayBindingError';
}

/** The gateway ended a call with a non-OK gRPC status (SPEC §4). */
export class GatewayStatusError extends Error {
  override readonly name = 'GatewayStatusError';
  /** Numeric gRPC status code, e.g. `9` for FAILED_PRECONDITION. */
  readonly code: GrpcStatus;
  /** Status name, e.g. `FAILED_PRECONDITION`. */
  readonly codeName: string;
  /** The status message, e.g. `device session is revoked`. */
  readonly details: string;

  constructor(code: GrpcStatus, details: string, options?: { cause?: unknown }) {
    const codeName = GrpcStatus[code] ?? String(code);
    super(`${codeName}: ${details}`, options);
    this.code = code;
    this.codeName = codeName;
    this.details = details;
  }
}

/** True for a grpc-js `ServiceError` (an Error with a numeric `code` and `details`). */
export function isServiceError(error: unknown): error is Error & { code: number; details: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'number' && typeof (error as { details?: unknown }).details === 'string';
}

/** Turns a grpc-js `ServiceError` into a `GatewayStatusError`; other values pass through. */
export function toClientError(error: unknown): unknown {
  if (isServiceError(error)) return new GatewayStatusError(error.code, error.details, { cause: error });
  return error;
}

import { Metadata, status as GrpcStatus, type StatusObject } from '@grpc/grpc-js';
import { GatewayError, GatewayErrorCode } from '@edge-gateway/core';

/** The gRPC status of every core error code (complete: a new code fails to compile here). */
export const grpcStatusFor: Record<GatewayErrorCode, GrpcStatus> = {
  [GatewayErrorCode.InvalidArgument]: GrpcStatus.INVALID_ARGUMENT,
  [GatewayErrorCode.Unauthenticated]: GrpcStatus.UNAUTHENTICATED,
  [GatewayErrorCode.FailedPrecondition]: GrpcStatus.FAILED_PRECONDITION,
  [GatewayErrorCode.AlreadyExists]: GrpcStatus.ALREADY_EXISTS,
  [GatewayErrorCode.Unimplemented]: GrpcStatus.UNIMPLEMENTED,
  [GatewayErrorCode.Unavailable]: GrpcStatus.UNAVAILABLE,
  [GatewayErrorCode.DeadlineExceeded]: GrpcStatus.DEADLINE_EXCEEDED,
  [GatewayErrorCode.ResourceExhausted]: GrpcStatus.RESOURCE_EXHAUSTED,
  [GatewayErrorCode.Internal]: GrpcStatus.INTERNAL,
};

/** The status a client sees for an error that is not a `GatewayError` (details stay in the log). */
export const INTERNAL_ERROR_DETAILS = 'internal error';

/** A gRPC status with its code, client-facing details and, for some, trailers. */
export type GatewayStatus = Pick<StatusObject, 'code' | 'details'> & { metadata?: Metadata };

/** Trailer of a rate-limited call: whole ms until the same request would be admitted (SPEC §4 step 7). */
export const RETRY_AFTER_MS_TRAILER = 'retry-after-ms';
/** The same value under the name gRPC retry policies honour (gRFC A6 server pushback). */
export const RETRY_PUSHBACK_MS_TRAILER = 'grpc-retry-pushback-ms';

/**
 * Maps any thrown value to the status sent to the client: a `GatewayError` keeps its
 * message (a rate-limited one gets the `retry-after-ms` and `grpc-retry-pushback-ms`
 * trailers); anything else becomes `INTERNAL` `internal error`.
 */
export function toServiceError(error: unknown): GatewayStatus {
  if (error instanceof GatewayError) {
    const status: GatewayStatus = { code: grpcStatusFor[error.code], details: error.message };
    if (error.retryAfterMs !== undefined) status.metadata = retryTrailers(error.retryAfterMs);
    return status;
  }
  return { code: GrpcStatus.INTERNAL, details: INTERNAL_ERROR_DETAILS };
}

function retryTrailers(retryAfterMs: number): Metadata {
  const metadata = new Metadata();
  const value = String(Math.max(0, Math.ceil(retryAfterMs)));
  metadata.set(RETRY_AFTER_MS_TRAILER, value);
  metadata.set(RETRY_PUSHBACK_MS_TRAILER, value);
  return metadata;
}

/** `OK`, `UNAUTHENTICATED`…: the status name used as the `code` metric label. */
export function grpcStatusName(code: GrpcStatus): string {
  return GrpcStatus[code] ?? String(code);
}

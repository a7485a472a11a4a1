import { status as GrpcStatus, type StatusObject } from '@grpc/grpc-js';
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

/** A gRPC status with its code and client-facing details. */
export type GatewayStatus = Pick<StatusObject, 'code' | 'details'>;

/**
 * Maps any thrown value to the status sent to the client: a `GatewayError` keeps its
 * message; anything else becomes `INTERNAL` `internal error`.
 */
export function toServiceError(error: unknown): GatewayStatus {
  if (error instanceof GatewayError) return { code: grpcStatusFor[error.code], details: error.message };
  return { code: GrpcStatus.INTERNAL, details: INTERNAL_ERROR_DETAILS };
}

/** `OK`, `UNAUTHENTICATED`…: the status name used as the `code` metric label. */
export function grpcStatusName(code: GrpcStatus): string {
  return GrpcStatus[code] ?? String(code);
}

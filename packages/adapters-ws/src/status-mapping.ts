import { GatewayError, GatewayErrorCode, GatewayMessages } from '@edge-gateway/core';
import { StatusCodes, type CallStatus } from '@edge-gateway/protocol';

/** The status code of every core error code (complete: a new code fails to compile here). */
export const statusCodeFor: Record<GatewayErrorCode, number> = {
  [GatewayErrorCode.InvalidArgument]: StatusCodes.INVALID_ARGUMENT,
  [GatewayErrorCode.Unauthenticated]: StatusCodes.UNAUTHENTICATED,
  [GatewayErrorCode.FailedPrecondition]: StatusCodes.FAILED_PRECONDITION,
  [GatewayErrorCode.AlreadyExists]: StatusCodes.ALREADY_EXISTS,
  [GatewayErrorCode.Unimplemented]: StatusCodes.UNIMPLEMENTED,
  [GatewayErrorCode.Unavailable]: StatusCodes.UNAVAILABLE,
  [GatewayErrorCode.DeadlineExceeded]: StatusCodes.DEADLINE_EXCEEDED,
  [GatewayErrorCode.ResourceExhausted]: StatusCodes.RESOURCE_EXHAUSTED,
  [GatewayErrorCode.Internal]: StatusCodes.INTERNAL,
};

/** A `GatewayError` keeps its message; anything else is `INTERNAL` `internal error` (details stay in the log). */
export function toCallStatus(error: unknown): CallStatus {
  if (error instanceof GatewayError) {
    return error.retryAfterMs === undefined ? { code: statusCodeFor[error.code], details: error.message } : { code: statusCodeFor[error.code], details: error.message, retryAfterMs: error.retryAfterMs };
  }
  return { code: StatusCodes.INTERNAL, details: GatewayMessages.internal };
}

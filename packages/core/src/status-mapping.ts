import { StatusCodes, type CallStatus, type StatusCode } from '@edge-gateway/protocol';
import { GatewayError, GatewayErrorCode, GatewayMessages } from './errors.js';

/**
 * The one error → status mapping of the gateway: the status code (protocol's numbering, which
 * is gRPC's) of every core error code. Every transport answers with it: gRPC sends the number,
 * the WebSocket status frame carries it, HTTP derives its status from it (protocol's
 * `httpStatusFor`). Complete: a new core code fails to compile here until it is mapped.
 */
export const statusCodeFor: Readonly<Record<GatewayErrorCode, StatusCode>> = Object.freeze({
  [GatewayErrorCode.InvalidArgument]: StatusCodes.INVALID_ARGUMENT,
  [GatewayErrorCode.Unauthenticated]: StatusCodes.UNAUTHENTICATED,
  [GatewayErrorCode.FailedPrecondition]: StatusCodes.FAILED_PRECONDITION,
  [GatewayErrorCode.AlreadyExists]: StatusCodes.ALREADY_EXISTS,
  [GatewayErrorCode.Unimplemented]: StatusCodes.UNIMPLEMENTED,
  [GatewayErrorCode.Unavailable]: StatusCodes.UNAVAILABLE,
  [GatewayErrorCode.DeadlineExceeded]: StatusCodes.DEADLINE_EXCEEDED,
  [GatewayErrorCode.ResourceExhausted]: StatusCodes.RESOURCE_EXHAUSTED,
  [GatewayErrorCode.Internal]: StatusCodes.INTERNAL,
});

/**
 * The status a caller is answered with for any thrown value: a {@link GatewayError} keeps its
 * message (and a rate-limited one its `retryAfterMs`); anything else is `INTERNAL`
 * `internal error` (the details stay in the log).
 */
export function toCallStatus(error: unknown): CallStatus {
  if (!(error instanceof GatewayError)) return { code: StatusCodes.INTERNAL, details: GatewayMessages.internal };
  const code = statusCodeFor[error.code];
  return error.retryAfterMs === undefined ? { code, details: error.message } : { code, details: error.message, retryAfterMs: error.retryAfterMs };
}

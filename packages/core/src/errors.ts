/**
 * Every failure the gateway reports to a caller. Transport adapters hold a complete
 * `Record<GatewayErrorCode, …>` mapping to their own status space, so adding a code here
 * fails their compilation until it is mapped.
 */
export const GatewayErrorCode = {
  InvalidArgument: 'invalid_argument',
  Unauthenticated: 'unauthenticated',
  FailedPrecondition: 'failed_precondition',
  AlreadyExists: 'already_exists',
  Unimplemented: 'unimplemented',
  Unavailable: 'unavailable',
  DeadlineExceeded: 'deadline_exceeded',
  ResourceExhausted: 'resource_exhausted',
  Internal: 'internal',
} as const;

export type GatewayErrorCode = (typeof GatewayErrorCode)[keyof typeof GatewayErrorCode];

/** The exact client-facing messages of SPEC §4 and §8.3. */
export const GatewayMessages = {
  staleRequest: 'request timestamp is outside the freshness window',
  unknownSession: 'unknown device session',
  sessionRevoked: 'device session is revoked',
  invalidSignature: 'invalid request signature',
  noRoute: (messageType: string) => `no route for message type ${messageType}`,
  replay: 'request_id was already used',
  sessionStoreUnavailable: 'session store unavailable',
  replayStoreUnavailable: 'replay store unavailable',
  /** The reservation was not confirmed on enough replicas (SPEC §5.2); the request did not run. */
  replayNotDurable: 'replay store not durable',
  downstreamFailed: 'downstream command failed',
  shuttingDown: 'gateway is shutting down',
  overflow: 'push stream overflowed',
  replaced: 'push stream replaced by a newer stream',
  malformedRequest: 'malformed request message',
  deadlineExceeded: 'deadline exceeded',
  internal: 'internal error',
  pushFeedUnavailable: 'push feed unavailable',
  rateLimited: 'rate limit exceeded',
  rateLimitStoreUnavailable: 'rate limit store unavailable',
} as const;

export interface GatewayErrorOptions {
  cause?: unknown;
  /** See {@link GatewayError.retryAfterMs}. */
  retryAfterMs?: number;
}

/**
 * Marks every {@link GatewayError}, whichever copy of `@edge-gateway/core` made it: a registered
 * symbol is the same in every copy, so an application that ends up with two copies installed (an
 * adapter resolved its own) still recognises the other copy's errors.
 */
const GATEWAY_ERROR_BRAND: unique symbol = Symbol.for('@edge-gateway/core.GatewayError') as never;

const codes = new Set<unknown>(Object.values(GatewayErrorCode));

/**
 * The single error type of the gateway. `message` is safe to show to the client.
 *
 * `instanceof GatewayError` (and {@link isGatewayError}) is true for a `GatewayError` of any
 * copy of this package, not only of the one the check was written against.
 */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly [GATEWAY_ERROR_BRAND] = true;
  readonly code: GatewayErrorCode;
  /**
   * Whole milliseconds after which the same request would be admitted (a rate-limited
   * request, SPEC §4 step 7); transports send it with the status (gRPC trailers
   * `retry-after-ms` and `grpc-retry-pushback-ms`, the WebSocket status frame's trailer).
   */
  readonly retryAfterMs: number | undefined;

  constructor(code: GatewayErrorCode, message: string, options?: GatewayErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
  }

  static invalidArgument(message: string): GatewayError {
    return new GatewayError(GatewayErrorCode.InvalidArgument, message);
  }
  static unauthenticated(message: string): GatewayError {
    return new GatewayError(GatewayErrorCode.Unauthenticated, message);
  }
  static failedPrecondition(message: string): GatewayError {
    return new GatewayError(GatewayErrorCode.FailedPrecondition, message);
  }
  static unavailable(message: string, cause?: unknown): GatewayError {
    return new GatewayError(GatewayErrorCode.Unavailable, message, { cause });
  }
  static internal(message: string, cause?: unknown): GatewayError {
    return new GatewayError(GatewayErrorCode.Internal, message, { cause });
  }
  static shuttingDown(): GatewayError {
    return new GatewayError(GatewayErrorCode.Unavailable, GatewayMessages.shuttingDown);
  }
  static revoked(): GatewayError {
    return new GatewayError(GatewayErrorCode.FailedPrecondition, GatewayMessages.sessionRevoked);
  }
  static overflow(): GatewayError {
    return new GatewayError(GatewayErrorCode.ResourceExhausted, GatewayMessages.overflow);
  }
  /** The session opened more than `maxStreamsPerSession` streams: its oldest one goes. */
  static replaced(): GatewayError {
    return new GatewayError(GatewayErrorCode.ResourceExhausted, GatewayMessages.replaced);
  }
  /** The caller's deadline passed before the command ran. */
  static deadlineExceeded(): GatewayError {
    return new GatewayError(GatewayErrorCode.DeadlineExceeded, GatewayMessages.deadlineExceeded);
  }
  /** A rate limit refused the request (SPEC §4 step 7); it may be sent again after `retryAfterMs`. */
  static rateLimited(retryAfterMs: number): GatewayError {
    // No stack trace: an expected answer, made for every request of a flood (capturing one is
    // a measurable part of a refusal's cost), and never logged with a stack.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new GatewayError(GatewayErrorCode.ResourceExhausted, GatewayMessages.rateLimited, { retryAfterMs });
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
  /** The transport could not decode the request message at all. */
  static malformedRequest(): GatewayError {
    return new GatewayError(GatewayErrorCode.InvalidArgument, GatewayMessages.malformedRequest);
  }

  static override [Symbol.hasInstance](value: unknown): value is GatewayError {
    return isGatewayError(value);
  }
}

/** Whether `value` is a {@link GatewayError} made by any copy of `@edge-gateway/core`. */
export function isGatewayError(value: unknown): value is GatewayError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { [GATEWAY_ERROR_BRAND]?: unknown })[GATEWAY_ERROR_BRAND] === true &&
    codes.has((value as { code?: unknown }).code)
  );
}

/** The gRPC status codes the gateway uses (SPEC §4), the same numbers on every transport. */
export const StatusCodes = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof StatusCodes)[keyof typeof StatusCodes];

/** Index: code number; built once, so naming a status (per call, for metrics) allocates nothing. */
const STATUS_NAMES: readonly string[] = Object.entries(StatusCodes).reduce<string[]>((names, [name, value]) => ((names[value] = name), names), []);

/** `FAILED_PRECONDITION` for 9; the number as text for an unknown code. */
export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}

/**
 * The HTTP status of each status code, as Google's APIs map them (`google.rpc.Code`): what an
 * HTTP transport answers for a status (SPEC §6 for the gateway's own routes).
 */
export const httpStatusFor: Readonly<Record<StatusCode, number>> = Object.freeze({
  [StatusCodes.OK]: 200,
  [StatusCodes.CANCELLED]: 499,
  [StatusCodes.UNKNOWN]: 500,
  [StatusCodes.INVALID_ARGUMENT]: 400,
  [StatusCodes.DEADLINE_EXCEEDED]: 504,
  [StatusCodes.NOT_FOUND]: 404,
  [StatusCodes.ALREADY_EXISTS]: 409,
  [StatusCodes.PERMISSION_DENIED]: 403,
  [StatusCodes.RESOURCE_EXHAUSTED]: 429,
  [StatusCodes.FAILED_PRECONDITION]: 400,
  [StatusCodes.ABORTED]: 409,
  [StatusCodes.OUT_OF_RANGE]: 400,
  [StatusCodes.UNIMPLEMENTED]: 501,
  [StatusCodes.INTERNAL]: 500,
  [StatusCodes.UNAVAILABLE]: 503,
  [StatusCodes.DATA_LOSS]: 500,
  [StatusCodes.UNAUTHENTICATED]: 401,
});

/** A call ended with a non-OK status (SPEC §4): the same code and message on every transport. */
export class GatewayStatusError extends Error {
  override readonly name: string = 'GatewayStatusError';
  /** Numeric status code, e.g. `9` for FAILED_PRECONDITION. */
  readonly code: number;
  /** Status name, e.g. `FAILED_PRECONDITION`. */
  readonly codeName: string;
  /** The status message, e.g. `device session is revoked`. */
  readonly details: string;

  constructor(code: number, details: string, options?: { cause?: unknown }) {
    const codeName = statusName(code);
    super(`${codeName}: ${details}`, options);
    this.code = code;
    this.codeName = codeName;
    this.details = details;
  }
}

/** The message of a rate-limited call (SPEC §4 step 7). */
export const RATE_LIMITED_MESSAGE = 'rate limit exceeded';

/**
 * A rate limit refused the call: `RESOURCE_EXHAUSTED` `rate limit exceeded` (SPEC §4 step 7).
 * Nothing ran and nothing was reserved: the same request (same `request_id`) may be sent again
 * after `retryAfterMs`.
 */
export class RateLimitedError extends GatewayStatusError {
  override readonly name: string = 'RateLimitedError';
  /**
   * Milliseconds to wait before the request would be admitted: the gateway's `retry-after-ms`
   * ({@link DEFAULT_RETRY_AFTER_MS} if a proxy dropped it).
   */
  readonly retryAfterMs: number;

  constructor(retryAfterMs: number | undefined, options?: { cause?: unknown }) {
    super(StatusCodes.RESOURCE_EXHAUSTED, RATE_LIMITED_MESSAGE, options);
    this.retryAfterMs = retryAfterMs ?? DEFAULT_RETRY_AFTER_MS;
  }
}

/** The wait assumed for a rate-limited call whose `retry-after-ms` did not arrive. */
export const DEFAULT_RETRY_AFTER_MS = 1000;

/**
 * The error for a terminal status: a {@link RateLimitedError} for `8` `rate limit exceeded`,
 * a {@link GatewayStatusError} otherwise.
 */
export function statusError(code: number, details: string, retryAfterMs?: number, options?: { cause?: unknown }): GatewayStatusError {
  if (code === StatusCodes.RESOURCE_EXHAUSTED && details === RATE_LIMITED_MESSAGE) return new RateLimitedError(retryAfterMs, options);
  return new GatewayStatusError(code, details, options);
}

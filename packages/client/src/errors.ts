import { RETRY_AFTER_TRAILER, statusError } from '@edge-gateway/protocol';
import type { Metadata } from '@grpc/grpc-js';

// One set of error classes for every device client (gRPC here, WebSocket in client-web): the
// protocol package's, so `instanceof` works whatever the transport.
export { GatewayBindingError, GatewaySignatureError, GatewayStatusError, RateLimitedError } from '@edge-gateway/protocol';

/** True for a grpc-js `ServiceError` (an Error with a numeric `code` and `details`). */
export function isServiceError(error: unknown): error is Error & { code: number; details: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'number' && typeof (error as { details?: unknown }).details === 'string';
}

/**
 * Turns a grpc-js `ServiceError` into a `GatewayStatusError` (a `RateLimitedError` with the
 * `retry-after-ms` trailer for `RESOURCE_EXHAUSTED` `rate limit exceeded`); other values pass through.
 */
export function toClientError(error: unknown): unknown {
  if (isServiceError(error)) return statusError(error.code, error.details, retryAfterOf((error as { metadata?: Metadata }).metadata), { cause: error });
  return error;
}

/** The `retry-after-ms` trailer as a number (undefined when absent or not a whole number). */
function retryAfterOf(metadata: Metadata | undefined): number | undefined {
  const value = metadata?.get(RETRY_AFTER_TRAILER)[0];
  return typeof value === 'string' && /^\d{1,10}$/.test(value) ? Number(value) : undefined;
}

import { GatewayStatusError } from '@edge-gateway/protocol';

// One set of error classes for every device client (gRPC here, WebSocket in client-web): the
// protocol package's, so `instanceof` works whatever the transport.
export { GatewayBindingError, GatewaySignatureError, GatewayStatusError } from '@edge-gateway/protocol';

/** True for a grpc-js `ServiceError` (an Error with a numeric `code` and `details`). */
export function isServiceError(error: unknown): error is Error & { code: number; details: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'number' && typeof (error as { details?: unknown }).details === 'string';
}

/** Turns a grpc-js `ServiceError` into a `GatewayStatusError`; other values pass through. */
export function toClientError(error: unknown): unknown {
  if (isServiceError(error)) return new GatewayStatusError(error.code, error.details, { cause: error });
  return error;
}

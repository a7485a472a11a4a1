import { Metadata, status as GrpcStatus, type StatusObject } from '@grpc/grpc-js';
import { GatewayError, statusCodeFor, type GatewayErrorCode } from '@edge-gateway/core';

/**
 * The gRPC status of every core error code: core's one mapping (`statusCodeFor`), whose
 * numbering is gRPC's.
 */
export const grpcStatusFor: Readonly<Record<GatewayErrorCode, GrpcStatus>> = statusCodeFor as Readonly<Record<GatewayErrorCode, number>>;

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
  const status = callStatusOf(error);
  // The caller owns what it is given: a copy of the shared trailers.
  if (status.metadata !== undefined) status.metadata = status.metadata.clone();
  return status;
}

/**
 * {@link toServiceError} for the service's own answers, which go straight to grpc-js: a
 * rate-limited status's trailers are shared by every refusal with the same retry-after (read
 * only, see {@link retryTrailers}).
 */
export function callStatusOf(error: unknown): GatewayStatus {
  if (error instanceof GatewayError) {
    const status: GatewayStatus = { code: grpcStatusFor[error.code], details: error.message };
    if (error.retryAfterMs !== undefined) status.metadata = retryTrailers(error.retryAfterMs);
    return status;
  }
  return { code: GrpcStatus.INTERNAL, details: INTERNAL_ERROR_DETAILS };
}

/** Distinct retry-after values whose trailers are kept (a rule's interval bounds them; past this the cache starts again). */
const RETRY_TRAILERS_CACHED = 1024;
const retryTrailersByValue = new Map<number, Metadata>();

/**
 * The trailers of a rate-limited call, one `Metadata` per distinct value: a flood's refusals
 * share them instead of building and validating two entries each. grpc-js only reads a status's
 * metadata (it clones it before adding anything), and nothing here writes to it after.
 */
function retryTrailers(retryAfterMs: number): Metadata {
  const ms = Math.max(0, Math.ceil(retryAfterMs));
  const cached = retryTrailersByValue.get(ms);
  if (cached !== undefined) return cached;
  const metadata = new Metadata();
  const value = String(ms);
  metadata.set(RETRY_AFTER_MS_TRAILER, value);
  metadata.set(RETRY_PUSHBACK_MS_TRAILER, value);
  if (retryTrailersByValue.size >= RETRY_TRAILERS_CACHED) retryTrailersByValue.clear();
  retryTrailersByValue.set(ms, metadata);
  return metadata;
}

/** `OK`, `UNAUTHENTICATED`…: the status name used as the `code` metric label. */
export function grpcStatusName(code: GrpcStatus): string {
  return GrpcStatus[code] ?? String(code);
}

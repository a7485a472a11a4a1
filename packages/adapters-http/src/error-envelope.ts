import { type Response } from 'express';
import { statusCodeFor, type GatewayErrorCode } from '@edge-gateway/core';
import { httpStatusFor } from '@edge-gateway/protocol';

/** The `code` values of the HTTP error envelope (SPEC §6), in one place. */
export const HttpErrorCode = {
  InvalidRequest: 'invalid_request',
  PayloadTooLarge: 'payload_too_large',
  UnsupportedMediaType: 'unsupported_media_type',
  NotFound: 'not_found',
  MethodNotAllowed: 'method_not_allowed',
  ServiceUnavailable: 'service_unavailable',
  GatewayTimeout: 'gateway_timeout',
  BadGateway: 'bad_gateway',
  Internal: 'internal',
} as const;

export type HttpErrorCode = (typeof HttpErrorCode)[keyof typeof HttpErrorCode];

/** The HTTP status that goes with each gateway-originated envelope code. */
export const httpErrorStatus: Record<HttpErrorCode, number> = {
  invalid_request: 400,
  payload_too_large: 413,
  unsupported_media_type: 415,
  not_found: 404,
  method_not_allowed: 405,
  service_unavailable: 503,
  gateway_timeout: 504,
  bad_gateway: 502,
  internal: 500,
};

/** The envelope `code` of each core error code (SPEC §6). */
const gatewayErrorCodeName: Record<GatewayErrorCode, string> = {
  invalid_argument: HttpErrorCode.InvalidRequest,
  unauthenticated: 'unauthenticated',
  failed_precondition: 'failed_precondition',
  already_exists: 'already_exists',
  unimplemented: 'not_implemented',
  unavailable: HttpErrorCode.ServiceUnavailable,
  deadline_exceeded: HttpErrorCode.GatewayTimeout,
  resource_exhausted: 'resource_exhausted',
  internal: HttpErrorCode.Internal,
};

/**
 * How a core `GatewayError` is answered over HTTP: the status from core's one mapping
 * (`statusCodeFor`, then protocol's `httpStatusFor`) and the envelope code. No public route
 * raises one today; the table is complete so that a new core code fails compilation until it
 * has an envelope code.
 */
export const gatewayErrorHttp: Readonly<Record<GatewayErrorCode, { readonly status: number; readonly code: string }>> = Object.freeze(
  Object.fromEntries(
    (Object.keys(gatewayErrorCodeName) as GatewayErrorCode[]).map((code) => [code, { status: httpStatusFor[statusCodeFor[code]], code: gatewayErrorCodeName[code] }]),
  ) as Record<GatewayErrorCode, { readonly status: number; readonly code: string }>,
);

/** The JSON error body of every failed HTTP request (SPEC §6). */
export interface ErrorEnvelope {
  readonly error: { readonly code: string; readonly message: string };
}

/**
 * A failure a route raises on purpose; the app's error handler answers it with the envelope.
 * `message` is shown to the client.
 */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly status: number;

  constructor(
    readonly code: HttpErrorCode,
    message: string,
  ) {
    super(message);
    this.status = httpErrorStatus[code];
  }
}

/** Writes `{"error":{"code","message"}}` with `Content-Type: application/json`. */
export function sendError(res: Response, status: number, code: string, message: string): void {
  const body: ErrorEnvelope = { error: { code, message } };
  res.status(status).json(body);
}

import { type Response } from 'express';
import { type GatewayErrorCode } from '@edge-gateway/core';

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

/**
 * How a core `GatewayError` is answered over HTTP. No public route raises one today; the
 * table is complete so that a new core code fails compilation here until it is mapped.
 */
export const gatewayErrorHttp: Record<GatewayErrorCode, { readonly status: number; readonly code: string }> = {
  invalid_argument: { status: 400, code: HttpErrorCode.InvalidRequest },
  unauthenticated: { status: 401, code: 'unauthenticated' },
  failed_precondition: { status: 400, code: 'failed_precondition' },
  already_exists: { status: 409, code: 'already_exists' },
  unimplemented: { status: 501, code: 'not_implemented' },
  unavailable: { status: 503, code: HttpErrorCode.ServiceUnavailable },
  deadline_exceeded: { status: 504, code: HttpErrorCode.GatewayTimeout },
  resource_exhausted: { status: 429, code: 'resource_exhausted' },
  internal: { status: 500, code: HttpErrorCode.Internal },
};

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

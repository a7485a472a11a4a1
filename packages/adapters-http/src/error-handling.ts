import { type ErrorRequestHandler, type RequestHandler } from 'express';
import { AuthUpstreamError, isGatewayError, type Logger } from '@edge-gateway/core';
import { HttpError, HttpErrorCode, gatewayErrorHttp, httpErrorStatus, sendError } from './error-envelope.js';
import { mapUpstreamFailure } from './upstream-failure-mapping.js';

/** Final middleware: any request no route answered gets `404 not_found`. */
export const notFound: RequestHandler = (_req, res) => {
  sendError(res, 404, HttpErrorCode.NotFound, 'route not found');
};

/** Last handler of a known route: a method it does not serve gets `405` with `Allow`. */
export function methodNotAllowed(allowed: readonly string[]): RequestHandler {
  const allow = allowed.join(', ');
  return (req, res) => {
    res.setHeader('Allow', allow);
    sendError(res, 405, HttpErrorCode.MethodNotAllowed, `method ${req.method} not allowed, use ${allow}`);
  };
}

/**
 * Shape of the errors body-parser raises (http-errors). `type` is absent when it wraps a
 * stream error as is, e.g. the zlib error of a corrupt `Content-Encoding: gzip` body.
 */
interface BodyParserError {
  readonly status: number;
  readonly type?: string;
  readonly limit?: unknown;
}

function isBodyParserError(error: unknown): error is BodyParserError {
  return error instanceof Error && typeof (error as Partial<BodyParserError>).status === 'number';
}

/**
 * The app's error handler: every failure becomes the SPEC §6 envelope. Unexpected errors
 * answer `500 internal` and are logged; no stack or internal message reaches the client.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    if (res.headersSent) {
      // Too late for an envelope: cut the connection so the client sees a failure.
      res.destroy();
      return;
    }
    if (error instanceof HttpError) {
      sendError(res, error.status, error.code, error.message);
      return;
    }
    if (error instanceof AuthUpstreamError) {
      const answer = mapUpstreamFailure(error.failure);
      const detail = error.failure.kind === 'bad_response' ? error.failure.detail : undefined;
      const fields = { method: req.method, kind: error.failure.kind, status: answer.status, detail };
      // A rejection is the upstream's normal answer to a bad code or address; the rest are faults.
      if (error.failure.kind === 'rejected') logger.debug('auth upstream rejected the request', fields);
      else logger.warn('auth upstream failed', fields);
      sendError(res, answer.status, answer.code, answer.message);
      return;
    }
    if (isGatewayError(error)) {
      const mapped = gatewayErrorHttp[error.code];
      sendError(res, mapped.status, mapped.code, error.message);
      return;
    }
    if (isBodyParserError(error)) {
      if (error.type === 'entity.too.large' || error.status === 413) {
        const limit = typeof error.limit === 'number' ? `${error.limit} bytes` : 'the limit';
        sendError(res, 413, HttpErrorCode.PayloadTooLarge, `request body exceeds ${limit}`);
      } else if (error.type === 'entity.parse.failed') {
        sendError(res, 400, HttpErrorCode.InvalidRequest, 'body: invalid JSON');
      } else if (error.status === 415) {
        sendError(res, 415, HttpErrorCode.UnsupportedMediaType, 'unsupported body encoding or charset');
      } else if (error.status >= 400 && error.status < 500) {
        sendError(res, 400, HttpErrorCode.InvalidRequest, 'body: could not be read');
      } else {
        logger.error('http request failed', { method: req.method, error: error.type ?? `status ${error.status}` });
        sendError(res, 500, HttpErrorCode.Internal, 'internal error');
      }
      return;
    }
    logger.error('http request failed', {
      method: req.method,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    });
    sendError(res, httpErrorStatus.internal, HttpErrorCode.Internal, 'internal error');
  };
}

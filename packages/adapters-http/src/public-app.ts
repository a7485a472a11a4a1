import express, { type Express, type RequestHandler, type Response } from 'express';
import { GatewayMetrics, noopLogger, type AuthUpstream, type Logger } from '@edge-gateway/core';
import { parseConfirmEmailCodeRequest, parseSendEmailCodeRequest } from './auth-request-validation.js';
import { HttpError, HttpErrorCode } from './error-envelope.js';
import { errorHandler, methodNotAllowed, notFound } from './error-handling.js';
import { type Readiness } from './readiness.js';
import { PublicRoutes } from './public-routes.js';
import { labelRoute, observeRequests } from './request-observer.js';
import { UpstreamMessages } from './upstream-failure-mapping.js';

/** Default cap on a public request body (SPEC §6): 64 KiB. */
export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024;

export interface PublicAppOptions {
  /** Read on every `GET /readyz`; the app flips it during startup and shutdown. */
  readonly readiness: () => Readiness;
  /** Without one, both auth routes answer `503 service_unavailable`. */
  readonly authUpstream?: AuthUpstream;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
  /** Largest accepted request body; larger ones get `413 payload_too_large`. */
  readonly bodyLimitBytes?: number;
}

const READY_STATUS: Record<Readiness, number> = { starting: 503, ready: 200, shutting_down: 503 };

function noStore(res: Response): Response {
  return res.setHeader('Cache-Control', 'no-store');
}

/** Refuses a body whose media type is not `application/json` (parameters such as charset allowed). */
const requireJson: RequestHandler = (req, _res, next) => {
  const mediaType = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    throw new HttpError(HttpErrorCode.UnsupportedMediaType, 'content type must be application/json');
  }
  next();
};

/**
 * Builds the public express app: `/healthz`, `/readyz` and the two auth routes that
 * validate the JSON body and forward it to the auth upstream (SPEC §6). Every error is the
 * `{"error":{"code","message"}}` envelope; a wrong method on a known path is `405` with
 * `Allow`, an unknown path `404`.
 */
export function createPublicApp(options: PublicAppOptions): Express {
  const metrics = options.metrics ?? new GatewayMetrics();
  const logger = (options.logger ?? noopLogger).child({ component: 'public-http' });
  const upstream = options.authUpstream;
  const bodyLimitBytes = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  // The media type is checked by requireJson (so a body-less POST is not mistaken for
  // "not JSON"); the parser then accepts whatever reaches it.
  const parseJson = express.json({ limit: bodyLimitBytes, strict: true, type: () => true });

  const requireUpstream: RequestHandler = (_req, _res, next) => {
    if (upstream === undefined) throw new HttpError(HttpErrorCode.ServiceUnavailable, UpstreamMessages.notConfigured);
    next();
  };

  /** Validates the body, calls the upstream (aborted if the client leaves) and relays its answer. */
  function forward<Req, Res>(
    parse: (body: unknown) => Req,
    call: (target: AuthUpstream, request: Req, signal: AbortSignal) => Promise<Res>,
  ): RequestHandler {
    return async (req, res) => {
      const request = parse(req.body);
      const controller = new AbortController();
      const onClose = (): void => {
        if (!res.writableFinished) controller.abort();
      };
      res.once('close', onClose);
      try {
        const answer = await call(upstream as AuthUpstream, request, controller.signal);
        noStore(res).status(200).json(answer);
      } catch (error) {
        if (controller.signal.aborted) {
          res.destroy(); // the client is gone: nobody to answer, free the connection
          return;
        }
        throw error;
      } finally {
        res.off('close', onClose);
      }
    };
  }

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(observeRequests({ listener: 'public', metrics, logger }));

  app
    .route(PublicRoutes.healthz)
    .all(labelRoute(PublicRoutes.healthz))
    .get((_req, res) => {
      noStore(res).status(200).json({ status: 'ok' });
    })
    .all(methodNotAllowed(['GET', 'HEAD']));

  app
    .route(PublicRoutes.readyz)
    .all(labelRoute(PublicRoutes.readyz))
    .get((_req, res) => {
      const readiness = options.readiness();
      noStore(res).status(READY_STATUS[readiness]).json({ status: readiness });
    })
    .all(methodNotAllowed(['GET', 'HEAD']));

  app
    .route(PublicRoutes.sendEmailCode)
    .all(labelRoute(PublicRoutes.sendEmailCode))
    .post(
      requireUpstream,
      requireJson,
      parseJson,
      forward(parseSendEmailCodeRequest, (target, request, signal) => target.sendEmailCode(request, signal)),
    )
    .all(methodNotAllowed(['POST']));

  app
    .route(PublicRoutes.confirmEmailCode)
    .all(labelRoute(PublicRoutes.confirmEmailCode))
    .post(
      requireUpstream,
      requireJson,
      parseJson,
      forward(parseConfirmEmailCodeRequest, (target, request, signal) => target.confirmEmailCode(request, signal)),
    )
    .all(methodNotAllowed(['POST']));

  app.use(notFound);
  app.use(errorHandler(logger));
  return app;
}

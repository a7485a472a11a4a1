import express, { type Express } from 'express';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { GatewayMetrics, noopLogger, type Logger } from '@edge-gateway/core';
import { errorHandler, methodNotAllowed, notFound } from './error-handling.js';
import { labelRoute, observeRequests } from './request-observer.js';

/** The path of the Prometheus scrape endpoint on the admin listener. */
export const ADMIN_METRICS_ROUTE = '/metrics';
/**
 * The liveness path on the admin listener: the admin listener is not counted against
 * `GATEWAY_MAX_CONNECTIONS`, so it answers while the public listeners refuse connections.
 */
export const ADMIN_HEALTHZ_ROUTE = '/healthz';

export interface AdminAppOptions {
  /**
   * Writes the Prometheus text exposition, e.g. the OpenTelemetry
   * `PrometheusExporter.getMetricsRequestHandler` bound to its exporter.
   */
  readonly metricsHandler: (req: IncomingMessage, res: ServerResponse) => void;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
}

/**
 * Builds the admin express app: `GET /metrics` delegates to `metricsHandler`, `GET /healthz`
 * answers `200 {"status":"ok"}` (liveness, like the public `/healthz`); any other path is
 * `404 not_found`, another method on either `405 method_not_allowed`.
 */
export function createAdminApp(options: AdminAppOptions): Express {
  const metrics = options.metrics ?? new GatewayMetrics();
  const logger = (options.logger ?? noopLogger).child({ component: 'admin-http' });

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(observeRequests({ listener: 'admin', metrics, logger }));
  app
    .route(ADMIN_METRICS_ROUTE)
    .all(labelRoute(ADMIN_METRICS_ROUTE))
    .get((req, res) => {
      options.metricsHandler(req, res);
    })
    .all(methodNotAllowed(['GET', 'HEAD']));
  app
    .route(ADMIN_HEALTHZ_ROUTE)
    .all(labelRoute(ADMIN_HEALTHZ_ROUTE))
    .get((_req, res) => {
      res.setHeader('Cache-Control', 'no-store');
      res.status(200).json({ status: 'ok' });
    })
    .all(methodNotAllowed(['GET', 'HEAD']));
  app.use(notFound);
  app.use(errorHandler(logger));
  return app;
}

import { type RequestHandler, type Response } from 'express';
import { type GatewayMetrics, type Logger } from '@edge-gateway/core';

/** Route label of requests that matched no route: keeps label cardinality bounded. */
export const NOT_FOUND_ROUTE = 'not_found';

const ROUTE_LABEL = Symbol('routeLabel');

type LabelledResponse = Response & { [ROUTE_LABEL]?: string };

/** Middleware a route runs first: names the route pattern for metrics and logs. */
export function labelRoute(route: string): RequestHandler {
  return (_req, res, next) => {
    (res as LabelledResponse)[ROUTE_LABEL] = route;
    next();
  };
}

export interface RequestObserverOptions {
  /** Value of the `listener` label: `public` or `admin`. */
  readonly listener: string;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
}

/**
 * Counts every finished response in `gateway_http_requests_total{listener, route, status}`
 * and logs it at debug (method, route, status, duration). Never logs paths or bodies.
 */
export function observeRequests(options: RequestObserverOptions): RequestHandler {
  const { listener, metrics, logger } = options;
  return (req, res, next) => {
    const started = performance.now();
    res.once('close', () => {
      const route = (res as LabelledResponse)[ROUTE_LABEL] ?? NOT_FOUND_ROUTE;
      const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      if (!res.writableFinished) {
        // The client went away before the answer was written: nothing was served.
        logger.debug('http request aborted', { method: req.method, route, duration_ms: durationMs });
        return;
      }
      const status = res.statusCode;
      metrics.httpRequests.add(1, { listener, route, status: String(status) });
      logger.debug('http request', { method: req.method, route, status, duration_ms: durationMs });
    });
    next();
  };
}

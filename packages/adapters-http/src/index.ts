/**
 * express adapters of the edge gateway: the public app (`/healthz`, `/readyz`, auth routes),
 * the admin app (`/metrics`), the HTTP auth-upstream client and the listener lifecycle.
 */
export { type Readiness } from './readiness.js';
export { gatewayErrorHttp, HttpError, HttpErrorCode, httpErrorStatus, sendError, type ErrorEnvelope } from './error-envelope.js';
export { PublicRoutes } from './public-routes.js';
export { createPublicApp, DEFAULT_BODY_LIMIT_BYTES, type PublicAppOptions } from './public-app.js';
export { ADMIN_HEALTHZ_ROUTE, ADMIN_METRICS_ROUTE, createAdminApp, type AdminAppOptions } from './admin-app.js';
export { DEFAULT_AUTH_UPSTREAM_TIMEOUT_MS, DEFAULT_MAX_UPSTREAM_RESPONSE_BYTES, HttpAuthUpstream, type HttpAuthUpstreamOptions } from './http-auth-upstream.js';
export { mapUpstreamFailure, UpstreamMessages, type HttpErrorAnswer } from './upstream-failure-mapping.js';
export { formatListenAddress, parseListenAddress, type ListenAddress } from './listen-address.js';
export { DEFAULT_HTTP_WRITE_TIMEOUT_MS } from './answer-bounds.js';
export { DEFAULT_HTTP_TIMEOUTS, listen, type CloseOutcome, type HttpListener, type ListenOptions } from './http-listener.js';
export { boundTlsHandshakes, GUARD_LOG_INTERVAL_MS, ListenerGuard, type GuardedListener, type ListenerGuardOptions } from './listener-guard.js';

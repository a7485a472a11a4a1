export * from './domain.js';
export * from './errors.js';
export * from './validation.js';
export * from './encoding/base64.js';
export * from './ports/index.js';
export * from './signing/canonical.js';
export * from './signing/keys.js';
export * from './signing/signer.js';
export * from './signing/rotating-signer.js';
export * from './signing/verifier.js';
export * from './session/session-fields.js';
export * from './session/session-cache.js';
export * from './push/push-hub.js';
export * from './routing/static-router.js';
export * from './handlers/client-event.js';
export * from './handlers/stream-entry-handler.js';
export * from './handlers/client-events-handler.js';
export * from './handlers/session-events-handler.js';
export * from './services/command-service.js';
export * from './services/subscription-service.js';
export * from './services/server-time.js';
export * from './observability/metrics.js';
export * from './observability/log-safe.js';
export {
  createGatewayCore,
  DEFAULT_PUSH_STREAM_BUFFER,
  DEFAULT_SESSION_CACHE_MAX_ENTRIES,
  DEFAULT_SESSION_CACHE_TTL_MS,
  type GatewayCore,
  type GatewayCoreOptions,
  type GatewayCorePorts,
  type ShutdownPlan,
} from './composition/gateway-core.js';
export { openStream, type OpenedStream } from './composition/stream-opening.js';
export { runShutdown, withBudget, type ShutdownStep } from './composition/shutdown.js';

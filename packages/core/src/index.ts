/**
 * `@edge-gateway/core`: the transport-free gateway core. Start with {@link createGatewayCore};
 * the services, hub and handlers it assembles are exported for embedders that need them.
 * In-memory adapters: `@edge-gateway/core/memory`; port contract suites: `@edge-gateway/core/testing`.
 * `SessionCache` and `PushStream` are exported as types only (the core creates them); what our
 * own adapters need beyond this surface is in `@edge-gateway/core/internal`, outside semver.
 *
 * @packageDocumentation
 */

// Composition root: assemble, open streams, shut down
export {
  createGatewayCore,
  DEFAULT_PUSH_STREAM_BUFFER,
  DEFAULT_SESSION_CACHE_MAX_ENTRIES,
  DEFAULT_SESSION_CACHE_TTL_MS,
  GATEWAY_CORE_DEFAULTS,
  type GatewayCore,
  type GatewayCoreOptions,
  type GatewayCorePorts,
  type ClosableEventSource,
  type ShutdownPlan,
} from './composition/gateway-core.js';
export { openStream, type OpenedStream } from './composition/stream-opening.js';
export { DEFAULT_CLOSE_BUDGET_MS, runShutdown, withBudget, type ShutdownStep } from './composition/shutdown.js';

// Domain types and errors
export {
  GatewayEventTypes,
  type CommandRequest,
  type CommandResult,
  type DeviceSession,
  type DownstreamCommand,
  type DownstreamResult,
  type GatewayEvent,
  type RawFields,
  type ResolvedSession,
  type SessionStatus,
  type StreamEntry,
  type SubscribeRequest,
  type UnsignedEvent,
} from './domain.js';
export { GatewayError, GatewayErrorCode, GatewayMessages, isGatewayError, type GatewayErrorOptions } from './errors.js';
export { statusCodeFor, toCallStatus } from './status-mapping.js';

// Ports (what the core needs from adapters)
export {
  AuthUpstreamError,
  type AuthUpstream,
  type AuthUpstreamFailure,
  type ConfirmEmailCodeRequest,
  type ConfirmEmailCodeResponse,
  type SendEmailCodeRequest,
  type SendEmailCodeResponse,
} from './ports/auth-upstream.port.js';
export { systemClock, type Clock } from './ports/clock.port.js';
export { abortSignalOf, CancellationSource, type Cancellation } from './ports/cancellation.port.js';
export { type CommandDownstream, type CommandRouter, type DownstreamCallContext } from './ports/command-router.port.js';
export { type EventHistory, type EventHistoryPage } from './ports/event-history.port.js';
export { noopLogger, type LogFields, type Logger } from './ports/logger.port.js';
export { replayKey, type ReplayReservation, type ReplayStore } from './ports/replay-store.port.js';
export {
  type RateLimitAdmission,
  type RateLimitBucket,
  type RateLimiter,
  type RateLimitRefusal,
  type RateLimitSubject,
  type RateLimitVerdict,
  type ReservedVerdict,
} from './ports/rate-limiter.port.js';
export { signWith, type ResponseSigner } from './ports/response-signer.port.js';
export { type SessionStore } from './ports/session-store.port.js';
export { type ReassertOutcome, type RevocationStore, type RevocationToReassert } from './ports/revocation-store.port.js';
export { type UserFeed } from './ports/user-feed.port.js';
export { type EpochLink, type HistoryPosition, type SequencedEvent, type UserHistoryReader } from './ports/user-history.port.js';

// Services, push hub, stream-entry handlers, routing
export {
  CommandService,
  DEFAULT_ASYNC_CRYPTO_MIN_IN_FLIGHT,
  DEFAULT_DOWNSTREAM_TIMEOUT_MS,
  DEFAULT_MAX_PAYLOAD_BYTES,
  type CallContext,
  type CommandServiceOptions,
} from './services/command-service.js';
export { DEFAULT_FRESHNESS_WINDOW_MS, type PipelineDeps } from './services/pipeline.js';
export {
  DEFAULT_MAX_CONCURRENT_CHECKS,
  DEFAULT_RESUME_MAX_EVENTS,
  DEFAULT_RESUME_MAX_SCAN,
  SubscriptionService,
  type SubscriptionServiceOptions,
} from './services/subscription-service.js';
export {
  DEFAULT_PUSH_MAX_STREAMS_PER_SESSION,
  DEFAULT_PUSH_STREAM_BUFFER_BYTES,
  PushHub,
  type PushStream,
  type PushHubOptions,
  type PushSink,
  type RegisterOptions,
  type StartOptions,
} from './push/push-hub.js';
export {
  DEFAULT_RESUME_INDEX_MAX_BYTES,
  INDEX_ENTRY_BYTES,
  INDEX_USER_BYTES,
  UserEventIndex,
  type IndexedIds,
} from './push/user-event-index.js';
export { type SequencedDelivery } from './push/user-sequencer.js';
export { type SessionCache, type SessionCacheOptions } from './session/session-cache.js';
export {
  DEFAULT_REVOCATIONS_MAX_ENTRIES,
  RevocationMemory,
  type RememberedRevocation,
  type RevocationMemoryOptions,
} from './session/revocation-memory.js';
export { RevocationReasserter, type RevocationReasserterOptions } from './session/revocation-reasserter.js';
export { type StreamEntryHandler, type StreamHistoryLoss, type StreamReconnect } from './handlers/stream-entry-handler.js';
export { ClientEventsHandler, DEFAULT_ASYNC_SIGN_MIN_BATCH, signEvent, type ClientEventsHandlerOptions } from './handlers/client-events-handler.js';
export { SessionEventsHandler, type SessionEventsHandlerOptions } from './handlers/session-events-handler.js';
export { StaticRouter, type StaticRoute } from './routing/static-router.js';

// Rate limits (SPEC §4 step 7, §7 GATEWAY_RATE_LIMITS)
export {
  formatRateLimitRules,
  MAX_RATE_LIMIT_COUNT,
  parseRateLimitRules,
  RATE_LIMIT_SCOPES,
  RateLimitRuleError,
  type RateLimitRule,
  type RateLimitScope,
} from './rate-limit/rate-limit-rules.js';
export { RateLimits, type RateLimitsOptions } from './rate-limit/rate-limits.js';

// Data formats: field validation, Redis entries (SPEC §2.1, §5)
export {
  compareStreamIds,
  FieldReasons,
  isStreamId,
  isValidId,
  isValidUserId,
  USER_ID_MAX_CHARS,
  isValidType,
  validateCommandRequest,
  validateSubscribeRequest,
} from './validation.js';
export { base64DecodedLength, isStandardBase64 } from './encoding/base64.js';
export { parseRevocation, parseSessionFields, type ParsedSession, type Revocation } from './session/session-fields.js';
export {
  ClientEventReasons,
  DEFAULT_PUSH_MAX_EVENT_BYTES,
  parseClientEvent,
  type ClientEventLimits,
  type ParsedClientEvent,
} from './handlers/client-event.js';
export { encodeServerTime } from './services/server-time.js';

// Signing (SPEC §3)
export {
  commandRequestBytes,
  commandResultBytes,
  eventBytes,
  sha256,
  SigningContexts,
  subscribeRequestBytes,
  type CommandResultFields,
} from './signing/canonical.js';
export {
  ed25519PublicKeyFromRaw,
  generateEd25519Key,
  KeyFormatError,
  isSmallOrderEd25519Key,
  keyId,
  loadEd25519PrivateKeyPem,
  rawPublicKey,
  type GeneratedEd25519Key,
} from './signing/keys.js';
export { Ed25519ResponseSigner } from './signing/signer.js';
export { RotatingResponseSigner } from './signing/rotating-signer.js';
export {
  verifyCommandRequest,
  verifyCommandRequestAsync,
  verifyEd25519,
  verifyEd25519Async,
  verifySubscribeRequest,
  verifySubscribeRequestAsync,
} from './signing/verifier.js';

// Observability
export {
  GatewayMetrics,
  MetricNames,
  tracerProviderInstalled,
  type ConsumedStream,
  type LossNoticeReason,
  type ReplayReservationOutcome,
  type HistoryReadSource,
  type ResumeIncompleteReason,
  type RoutedRelayDropReason,
  type StreamCloseReason,
} from './observability/metrics.js';
export {
  MAX_LABEL_SETS_PER_TRANSPORT,
  MAX_LABEL_VALUE_CHARS,
  MAX_TRANSPORTS,
  TRANSPORT_NAME_PATTERN,
  transportMetricNames,
  type TransportCallLabels,
  type TransportCallRecorder,
  type TransportConnectionGauge,
} from './observability/transport-metrics.js';
export {
  ConnectionCloseMessages,
  ConnectionBudget,
  ConnectionBudgets,
  DEFAULT_CONNECTION_DRAIN_TIMEOUT_MS,
  DEFAULT_CONNECTION_FAILURE_LIMIT,
  DEFAULT_CONNECTION_LIMITS,
  DEFAULT_CONNECTION_MAX_BUFFER_BYTES,
  MAX_CALLS_PER_CONNECTION,
  isRefusal,
  parseFailureLimit,
  type ConnectionCloseReason,
  type ConnectionControl,
  type ConnectionBudgetsOptions,
  type ConnectionLimits,
  type FailureLimit,
} from './transport/connection-budget.js';
export { RequestLogLimiter, type RequestLogLimiterOptions } from './observability/request-log-limiter.js';
/** A loggable one-line description of any thrown value (never payload bytes). */
export { describe as describeError } from './services/command-service.js';

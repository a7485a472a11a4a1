/**
 * `@edge-gateway/core/internal`: pieces of the core that our own adapters and binary use but
 * embedders should not: no semver promise, any release may change them. Everything an embedder
 * needs is in `@edge-gateway/core`.
 *
 * @packageDocumentation
 */

/** The per-user ordering of the routed fan-out, used by `@edge-gateway/adapters-redis`. */
export { UserSequencer, type SequencedDelivery, type UserSequencerOptions } from './push/user-sequencer.js';
/** The session cache behind `createGatewayCore` (tests build one around a store). */
export { SessionCache, type SessionCacheOptions } from './session/session-cache.js';
/** A stream of the push hub (created by `PushHub.register`). */
export { PushStream } from './push/push-hub.js';
/** How many characters of a client-supplied value a log line keeps (the binary's log formatter). */
export { LOG_PREVIEW_CHARS } from './observability/log-safe.js';
/** Re-writes items in passes until none fails (the re-asserts after a failover: revocations, replay reservations). */
export { rewritePasses, type RewritePassesOptions, type RewritePassesResult } from './session/rewrite-passes.js';

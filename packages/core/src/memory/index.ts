/**
 * In-memory adapters for every storage port, usable in production processes (an embedder's
 * single-node deployment, the gateway's development mode) as well as in tests. This entry
 * point loads no test runner; the contract suites live on `@edge-gateway/core/testing`.
 *
 * @packageDocumentation
 */
export { FakeClock } from './fake-clock.js';
export { InMemorySessionStore } from './in-memory-session-store.js';
export { InMemoryReplayStore } from './in-memory-replay-store.js';
export { InMemoryEventStream } from './in-memory-event-stream.js';
export { DEFAULT_MAX_BUCKETS_PER_RULE, InMemoryRateLimiter, type InMemoryRateLimiterOptions } from './in-memory-rate-limiter.js';
export { InMemoryRevocationStore } from './in-memory-revocation-store.js';

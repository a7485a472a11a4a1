/**
 * Contract suites for the storage ports (they import `vitest`: load this entry point from
 * tests only). The in-memory adapters live on `@edge-gateway/core/memory`.
 *
 * @packageDocumentation
 */
export {
  replayStoreContract,
  sessionStoreContract,
  type ReplayStoreHarness,
  type SessionStoreHarness,
} from './contracts.js';
export { rateLimiterContract, type RateLimiterHarness } from './rate-limiter-contract.js';
export { revocationStoreContract, type RevocationStoreHarness } from './revocation-contract.js';

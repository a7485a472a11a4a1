import type { ReplayReservation } from './replay-store.port.js';

/**
 * One budget a request draws from: a configured rule applied to one subject (a device session
 * or a user). GCRA (SPEC §4): the rule admits `burst` requests at once and one more every
 * `intervalMs`; the limiter keeps one number per bucket (the theoretical arrival time).
 */
export interface RateLimitBucket {
  /** The rule's canonical text, e.g. `session:payments.=1/s:3`: names the bucket with `subject`. */
  readonly rule: string;
  /** The emission interval in ms (the rule's period divided by its count; may be fractional). */
  readonly intervalMs: number;
  /** Requests admitted at once (at least 1). */
  readonly burst: number;
  /** Whose budget: the device_session_id (session scopes) or the user_id (user scope). */
  readonly subject: string;
}

/** Who is asking: the request's device session and its user (a shared store may place keys by them). */
export interface RateLimitSubject {
  readonly deviceSessionId: string;
  readonly userId: string;
}

/** Every bucket had room: one request was taken from each. */
export interface RateLimitAdmission {
  readonly admitted: true;
}

/** A bucket had no room: nothing was taken from any bucket. */
export interface RateLimitRefusal {
  readonly admitted: false;
  /** Index (in the buckets given) of the first bucket that refused. */
  readonly refusedBy: number;
  /**
   * Milliseconds until every refusing bucket admits again (exact from GCRA, before rounding;
   * at most the largest emission interval among them).
   */
  readonly retryAfterMs: number;
}

export type RateLimitVerdict = RateLimitAdmission | RateLimitRefusal;

/** {@link RateLimiter.acquireAndReserve}: admitted with the reservation's outcome, or refused (no reservation). */
export type ReservedVerdict = { readonly admitted: true; readonly reservation: ReplayReservation } | RateLimitRefusal;

/**
 * Rate limits (SPEC §4 step 7): GCRA buckets, all or nothing. Implementations:
 * `InMemoryRateLimiter` (`@edge-gateway/core/memory`, counts in the process) and the Redis one
 * (`@edge-gateway/adapters-redis`, counts across the fleet in the replay reservation's round trip).
 */
export interface RateLimiter {
  /**
   * Admits when every bucket has room, taking one request from each; otherwise refuses and
   * takes nothing. May answer synchronously (the in-memory limiter does: no await on the hot
   * path). A rejection fails the request closed (`UNAVAILABLE` `rate limit store unavailable`).
   */
  acquire(buckets: readonly RateLimitBucket[], subject: RateLimitSubject): RateLimitVerdict | Promise<RateLimitVerdict>;
  /**
   * Optional, for a limiter whose store also holds the replay reservations: {@link acquire} and,
   * when admitted, the replay reservation of `(subject.deviceSessionId, requestId)` for `ttlMs`,
   * in one atomic step (one round trip). A refused request leaves no reservation. When present
   * the core calls this instead of `acquire` + `ReplayStore.reserve` (also with no buckets, so
   * every reservation has the same form), and a rejection is `replay store unavailable`.
   */
  acquireAndReserve?(buckets: readonly RateLimitBucket[], subject: RateLimitSubject, requestId: string, ttlMs: number): Promise<ReservedVerdict>;
  /**
   * With {@link acquireAndReserve}: withdraws a reservation it made for a command that then
   * never ran (its deadline passed), instead of `ReplayStore.release`.
   */
  releaseReservation?(subject: RateLimitSubject, requestId: string): Promise<void>;
}

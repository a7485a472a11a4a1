import type { Clock } from '../ports/clock.port.js';
import type { RateLimitBucket, RateLimiter, RateLimitVerdict } from '../ports/rate-limiter.port.js';
import { gcra } from '../rate-limit/gcra.js';

/** Options of {@link InMemoryRateLimiter}. */
export interface InMemoryRateLimiterOptions {
  /** Milliseconds; default a monotonic clock (`performance.now()`), which never steps back. */
  readonly clock?: Clock;
  /**
   * Buckets kept per rule at most (default 1,000,000). A bucket is forgotten once full again;
   * past this bound the least recently used one is forgotten early (its subject gets a fresh burst).
   */
  readonly maxBucketsPerRule?: number;
}

/** Default of {@link InMemoryRateLimiterOptions.maxBucketsPerRule}. */
export const DEFAULT_MAX_BUCKETS_PER_RULE = 1_000_000;

const monotonicClock: Clock = { now: () => performance.timeOrigin + performance.now() };

/**
 * GCRA in the process (`GATEWAY_RATE_LIMIT_STORE=local`): one number per bucket in a map per
 * rule, kept in least-recently-used order. Answers synchronously. No timers: each call forgets
 * up to two buckets that are full again, from the cold end of each map it touches, so memory
 * follows the subjects active within a rule's window. A fleet of N processes admits up to N
 * times a rule (each counts alone).
 */
export class InMemoryRateLimiter implements RateLimiter {
  private readonly clock: Clock;
  private readonly maxBuckets: number;
  private readonly rules = new Map<string, Map<string, number>>();
  /** Reused per call: the new `tat` of each bucket of the call being decided. */
  private next: number[] = [];

  constructor(options: InMemoryRateLimiterOptions = {}) {
    this.clock = options.clock ?? monotonicClock;
    this.maxBuckets = Math.max(1, options.maxBucketsPerRule ?? DEFAULT_MAX_BUCKETS_PER_RULE);
  }

  /** Buckets held (all rules); for tests and gauges. */
  get size(): number {
    let size = 0;
    for (const buckets of this.rules.values()) size += buckets.size;
    return size;
  }

  acquire(buckets: readonly RateLimitBucket[]): RateLimitVerdict {
    const now = this.clock.now();
    const next = this.next;
    let refusedBy = -1;
    let retryAfterMs = 0;
    for (let i = 0; i < buckets.length; i++) {
      const bucket = buckets[i] as RateLimitBucket;
      const step = gcra(this.tatsOf(bucket.rule, now).get(bucket.subject), now, bucket.intervalMs, bucket.burst);
      if (step.retryAfterMs > 0) {
        if (refusedBy < 0) refusedBy = i;
        if (step.retryAfterMs > retryAfterMs) retryAfterMs = step.retryAfterMs;
      }
      next[i] = step.nextTat;
    }
    if (refusedBy >= 0) return { admitted: false, refusedBy, retryAfterMs };
    for (let i = 0; i < buckets.length; i++) {
      const bucket = buckets[i] as RateLimitBucket;
      const tats = this.rules.get(bucket.rule) as Map<string, number>;
      // Delete and set: the map stays in least-recently-used order.
      tats.delete(bucket.subject);
      if (tats.size >= this.maxBuckets) tats.delete(tats.keys().next().value as string);
      tats.set(bucket.subject, next[i] as number);
    }
    return ADMITTED;
  }

  /** The rule's map, after forgetting up to two buckets at its cold end that are full again. */
  private tatsOf(rule: string, now: number): Map<string, number> {
    let tats = this.rules.get(rule);
    if (tats === undefined) {
      tats = new Map();
      this.rules.set(rule, tats);
      return tats;
    }
    for (let i = 0; i < 2; i++) {
      const oldest = tats.entries().next();
      if (oldest.done === true || oldest.value[1] > now) break;
      tats.delete(oldest.value[0]);
    }
    return tats;
  }
}

const ADMITTED: RateLimitVerdict = Object.freeze({ admitted: true });

import { GatewayError, GatewayErrorCode, GatewayMessages } from '../errors.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { Clock } from '../ports/clock.port.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { RateLimitBucket, RateLimiter, RateLimitRefusal, RateLimitSubject } from '../ports/rate-limiter.port.js';
import type { ReplayStore } from '../ports/replay-store.port.js';
import type { RateLimitRule } from './rate-limit-rules.js';

/** At most one `rate limit exceeded` log line per (device session, rule) in this many ms. */
export const RATE_LIMIT_LOG_INTERVAL_MS = 10_000;
/** (device session, rule) pairs remembered for the log interval at most; past it new pairs are not logged (still counted). */
export const RATE_LIMIT_LOG_MAX_KEYS = 10_000;

/** Options of {@link RateLimits}. */
export interface RateLimitsOptions {
  /** The parsed `GATEWAY_RATE_LIMITS` (`parseRateLimitRules`), in the order written. */
  readonly rules: readonly RateLimitRule[];
  readonly limiter: RateLimiter;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
  /** For the log interval (default `Date.now`). */
  readonly clock?: Clock;
}

interface LogSlot {
  at: number;
  refused: number;
}

/**
 * Step 7 of the pipeline (SPEC §4): which rules apply to a request, the limiter call (with the
 * replay reservation of step 8 when the limiter's store holds both), and the refusal: counted
 * in `gateway_rate_limited_total{scope,route}`, logged once per (session, rule) per 10 s, and
 * answered `RESOURCE_EXHAUSTED` `rate limit exceeded` with the retry-after. One instance is
 * shared by the command and the subscription service.
 */
export class RateLimits {
  readonly rules: readonly RateLimitRule[];
  readonly limiter: RateLimiter;
  private readonly commandRules: readonly RateLimitRule[];
  private readonly streamRules: readonly RateLimitRule[];
  private readonly metrics: GatewayMetrics | undefined;
  private readonly logger: Logger;
  private readonly clock: Clock;
  /** (session, rule) → last log line, oldest first (re-set on every line). */
  private readonly logged = new Map<string, LogSlot>();

  constructor(options: RateLimitsOptions) {
    this.rules = options.rules;
    this.limiter = options.limiter;
    this.commandRules = options.rules.filter((rule) => rule.scope !== 'session_streams');
    this.streamRules = options.rules.filter((rule) => rule.scope === 'session_streams');
    this.metrics = options.metrics;
    this.logger = options.logger ?? noopLogger;
    this.clock = options.clock ?? { now: () => Date.now() };
    // Every rule's series exists from startup (rate() works from the first refusal).
    for (const rule of options.rules) this.metrics?.rateLimited.add(0, labelsOf(rule));
  }

  /** The buckets a command draws from: every command rule whose route prefix matches, in the order written. */
  commandBuckets(subject: RateLimitSubject, messageType: string): RateLimitBucket[] {
    const buckets: RateLimitBucket[] = [];
    for (const rule of this.commandRules) {
      if (rule.routePrefix !== '' && !messageType.startsWith(rule.routePrefix)) continue;
      buckets.push(bucketOf(rule, subject));
    }
    return buckets;
  }

  /** The buckets a stream open draws from (`session_streams` rules). */
  streamBuckets(subject: RateLimitSubject): RateLimitBucket[] {
    return this.streamRules.map((rule) => bucketOf(rule, subject));
  }

  /**
   * Steps 7 and 8: the rate limits, then the replay reservation (both in one call when the
   * limiter's store holds the reservations). Throws the request's `GatewayError`: `rate limit
   * exceeded` (no reservation made, nothing taken from any bucket), `request_id was already
   * used`, or `UNAVAILABLE` when a store could not answer.
   */
  async admit(replay: ReplayStore, buckets: readonly RateLimitBucket[], subject: RateLimitSubject, requestId: string, ttlMs: number): Promise<'reserved'> {
    const { limiter } = this;
    if (limiter.acquireAndReserve !== undefined) {
      let verdict;
      try {
        verdict = await limiter.acquireAndReserve(buckets, subject, requestId, ttlMs);
      } catch (cause) {
        throw GatewayError.unavailable(GatewayMessages.replayStoreUnavailable, cause);
      }
      if (!verdict.admitted) throw this.refused(verdict, buckets, subject);
      if (verdict.reservation !== 'reserved') throw duplicate(this.metrics);
      return 'reserved';
    }
    if (buckets.length > 0) {
      let verdict;
      try {
        const answer = limiter.acquire(buckets, subject);
        // The in-memory limiter answers synchronously: no await (no extra turn) on the hot path.
        verdict = 'admitted' in answer ? answer : await answer;
      } catch (cause) {
        throw GatewayError.unavailable(GatewayMessages.rateLimitStoreUnavailable, cause);
      }
      if (!verdict.admitted) throw this.refused(verdict, buckets, subject);
    }
    let reservation;
    try {
      reservation = await replay.reserve(subject.deviceSessionId, requestId, ttlMs);
    } catch (cause) {
      throw GatewayError.unavailable(GatewayMessages.replayStoreUnavailable, cause);
    }
    if (reservation !== 'reserved') throw duplicate(this.metrics);
    return 'reserved';
  }

  /** Withdraws a reservation made by {@link admit} (the command's deadline passed before it ran). */
  async release(replay: ReplayStore, subject: RateLimitSubject, requestId: string): Promise<void> {
    if (this.limiter.acquireAndReserve !== undefined && this.limiter.releaseReservation !== undefined) {
      await this.limiter.releaseReservation(subject, requestId);
      return;
    }
    await replay.release?.(subject.deviceSessionId, requestId);
  }

  private refused(verdict: RateLimitRefusal, buckets: readonly RateLimitBucket[], subject: RateLimitSubject): GatewayError {
    const bucket = buckets[verdict.refusedBy] ?? buckets[0];
    const rule = this.rules.find((r) => r.id === bucket?.rule);
    const retryAfterMs = Math.max(1, Math.ceil(verdict.retryAfterMs));
    if (rule !== undefined) {
      this.metrics?.rateLimited.add(1, labelsOf(rule));
      this.log(rule, subject, retryAfterMs);
    }
    return GatewayError.rateLimited(retryAfterMs);
  }

  /** One line per (session, rule) per {@link RATE_LIMIT_LOG_INTERVAL_MS}; `refused` counts the refusals it stands for. */
  private log(rule: RateLimitRule, subject: RateLimitSubject, retryAfterMs: number): void {
    const now = this.clock.now();
    const key = `${subject.deviceSessionId}\n${rule.id}`;
    const slot = this.logged.get(key);
    if (slot !== undefined && now - slot.at < RATE_LIMIT_LOG_INTERVAL_MS) {
      slot.refused += 1;
      return;
    }
    // Forget pairs whose interval is over, from the oldest (lines are re-set in time order).
    for (let i = 0; i < 4; i++) {
      const oldest = this.logged.entries().next();
      if (oldest.done === true || now - oldest.value[1].at < RATE_LIMIT_LOG_INTERVAL_MS) break;
      this.logged.delete(oldest.value[0]);
    }
    const refused = (slot?.refused ?? 0) + 1;
    this.logged.delete(key);
    // Bounded: a flood from more sessions than this in one interval is counted, not logged.
    if (this.logged.size >= RATE_LIMIT_LOG_MAX_KEYS) return;
    this.logged.set(key, { at: now, refused: 0 });
    this.logger.info('rate limit exceeded', {
      device_session_id: subject.deviceSessionId,
      user_id: subject.userId,
      rule: rule.id,
      scope: rule.scope,
      route: routeLabel(rule),
      retry_after_ms: retryAfterMs,
      refused,
    });
  }
}

function bucketOf(rule: RateLimitRule, subject: RateLimitSubject): RateLimitBucket {
  return { rule: rule.id, intervalMs: rule.intervalMs, burst: rule.burst, subject: rule.scope === 'user' ? subject.userId : subject.deviceSessionId };
}

function duplicate(metrics: GatewayMetrics | undefined): GatewayError {
  metrics?.replayRejections.add(1);
  return new GatewayError(GatewayErrorCode.AlreadyExists, GatewayMessages.replay);
}

/** Label `route` of `gateway_rate_limited_total`: the rule's prefix, or `*` (bounded by the rules). */
export function routeLabel(rule: RateLimitRule): string {
  return rule.routePrefix === '' ? '*' : rule.routePrefix;
}

function labelsOf(rule: RateLimitRule): { scope: RateLimitRule['scope']; route: string } {
  return { scope: rule.scope, route: routeLabel(rule) };
}

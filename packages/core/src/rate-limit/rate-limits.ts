import { GatewayError, GatewayMessages } from '../errors.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { bindCounter, type BoundCounter } from '../observability/bound-counter.js';
import type { Clock } from '../ports/clock.port.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { RateLimitBucket, RateLimiter, RateLimitRefusal, RateLimitSubject } from '../ports/rate-limiter.port.js';
import type { ReplayStore } from '../ports/replay-store.port.js';
import { checkReservation, reservationUnavailable, reserveRequest, type PipelineDeps } from '../services/pipeline.js';
import type { RateLimitRule } from './rate-limit-rules.js';

/** At most one `rate limit exceeded` log line per (device session, rule) in this many ms. */
export const RATE_LIMIT_LOG_INTERVAL_MS = 10_000;
/** (device session, rule) pairs remembered for the log interval at most; past it new pairs are not logged (still counted). */
export const RATE_LIMIT_LOG_MAX_KEYS = 10_000;
/** Refusals remembered for {@link RateLimits.refuseKnown} at most (the least recent is forgotten first). */
export const RATE_LIMIT_KNOWN_REFUSALS_MAX = 10_000;

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

/** A refusal the limiter answered: the same buckets cannot admit before `until` (local monotonic ms). */
interface KnownRefusal {
  /** The bucket set refused (compared rule by rule and subject by subject: no key string built per request). */
  readonly buckets: readonly RateLimitBucket[];
  readonly until: number;
  /** The wait it was recorded with: a remaining wait longer than that means the clock stepped back. */
  readonly wait: number;
  readonly rule: RuleState | undefined;
}

/** One rule, its metric labels and refusal count, and its log slots (one object per rule, no allocation per refusal). */
interface RuleState {
  readonly rule: RateLimitRule;
  readonly labels: { scope: RateLimitRule['scope']; route: string };
  /** `gateway_rate_limited_total{scope,route}` of this rule, summed and handed over before each collection. */
  readonly refusals: BoundCounter<{ scope: string; route: string }> | undefined;
  /** Device session → last log line of this rule, oldest first (re-set on every line). */
  readonly logged: Map<string, LogSlot>;
}

const monotonicNow = (): number => performance.now();

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
  /** (session, rule) pairs with a log slot, over every rule's `logged`. */
  private loggedPairs = 0;
  /**
   * The subject of a bucket set's first bucket → the refusals the limiter last answered for the
   * sets starting with it; subjects oldest first (re-set on every refusal remembered).
   */
  private readonly known = new Map<string, KnownRefusal[]>();
  /** Refusals in `known`. */
  private knownCount = 0;
  private readonly monotonic: () => number;
  /** Rule id → its state. */
  private readonly byId = new Map<string, RuleState>();

  constructor(options: RateLimitsOptions) {
    this.rules = options.rules;
    this.limiter = options.limiter;
    this.commandRules = options.rules.filter((rule) => rule.scope !== 'session_streams');
    this.streamRules = options.rules.filter((rule) => rule.scope === 'session_streams');
    this.metrics = options.metrics;
    this.logger = options.logger ?? noopLogger;
    this.clock = options.clock ?? { now: () => Date.now() };
    // Tests inject a fake clock for both; the binary uses a clock that never steps back here.
    this.monotonic = options.clock === undefined ? monotonicNow : () => this.clock.now();
    // Every rule's series exists from startup (rate() works from the first refusal).
    for (const rule of options.rules) {
      const labels = Object.freeze(labelsOf(rule));
      const refusals = this.metrics === undefined ? undefined : bindCounter(this.metrics.rateLimited, labels);
      this.byId.set(rule.id, { rule, labels, refusals, logged: new Map() });
      this.metrics?.rateLimited.add(0, labels);
    }
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
   * Before the signature check: refuses a request whose buckets the limiter refused a moment
   * ago, for the rest of that wait, without asking the limiter (nor verifying the signature,
   * nor a round trip to a shared store). Exact: a GCRA bucket never admits before the time it
   * named (other requests, other processes only push it later), and the wait is measured from
   * before the limiter was asked. It draws from no bucket, so an unsigned request still never
   * uses a device's budget; such a request gets `rate limit exceeded` instead of
   * `invalid request signature` while the device is limited. This keeps a flood's refusals cheap.
   */
  refuseKnown(buckets: readonly RateLimitBucket[], subject: RateLimitSubject): void {
    const refusal = this.knownRefusal(buckets, subject);
    if (refusal !== undefined) throw refusal;
  }

  /**
   * {@link refuseKnown} without the throw: the refusal (counted and logged as any) when the
   * request is refused, otherwise undefined. For a caller that answers the refusal without
   * throwing it: a throw is a measurable part of what a flood's refusal costs.
   */
  knownRefusal(buckets: readonly RateLimitBucket[], subject: RateLimitSubject): GatewayError | undefined {
    if (this.knownCount === 0 || buckets.length === 0) return undefined;
    const list = this.known.get((buckets[0] as RateLimitBucket).subject);
    if (list === undefined) return undefined;
    const index = indexOfSet(list, buckets);
    if (index < 0) return undefined;
    const known = list[index] as KnownRefusal;
    const remaining = known.until - this.monotonic();
    if (remaining <= 0 || remaining > known.wait) {
      this.forget(known.buckets, list, index);
      return undefined;
    }
    return this.refusedBy(known.rule, subject, remaining);
  }

  /**
   * Steps 7 and 8: the rate limits, then the replay reservation (both in one call when the
   * limiter's store holds the reservations); the reservation's outcome is handled as the
   * pipeline handles any (counted, `reserved` or an error). Throws the request's `GatewayError`:
   * `rate limit exceeded` (no reservation made, nothing taken from any bucket), `request_id was
   * already used`, or `UNAVAILABLE` when a store could not answer.
   */
  async admit(deps: PipelineDeps, buckets: readonly RateLimitBucket[], subject: RateLimitSubject, requestId: string): Promise<void> {
    const { limiter } = this;
    const ttlMs = 2 * deps.freshnessWindowMs;
    const asked = this.monotonic();
    if (limiter.acquireAndReserve !== undefined) {
      let verdict;
      try {
        verdict = await limiter.acquireAndReserve(buckets, subject, requestId, ttlMs);
      } catch (cause) {
        throw reservationUnavailable(deps, cause);
      }
      if (!verdict.admitted) throw this.refused(verdict, buckets, subject, asked);
      checkReservation(deps, verdict.reservation);
      return;
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
      if (!verdict.admitted) throw this.refused(verdict, buckets, subject, asked);
    }
    await reserveRequest(deps, subject.deviceSessionId, requestId);
  }

  /** Withdraws a reservation made by {@link admit} (the command's deadline passed before it ran). */
  async release(replay: ReplayStore, subject: RateLimitSubject, requestId: string): Promise<void> {
    if (this.limiter.acquireAndReserve !== undefined && this.limiter.releaseReservation !== undefined) {
      await this.limiter.releaseReservation(subject, requestId);
      return;
    }
    await replay.release?.(subject.deviceSessionId, requestId);
  }

  private refused(verdict: RateLimitRefusal, buckets: readonly RateLimitBucket[], subject: RateLimitSubject, asked: number): GatewayError {
    const bucket = buckets[verdict.refusedBy] ?? buckets[0];
    const rule = bucket === undefined ? undefined : this.byId.get(bucket.rule);
    if (verdict.retryAfterMs > 0 && buckets.length > 0) this.remember({ buckets, until: asked + verdict.retryAfterMs, wait: verdict.retryAfterMs, rule });
    return this.refusedBy(rule, subject, verdict.retryAfterMs);
  }

  private refusedBy(rule: RuleState | undefined, subject: RateLimitSubject, waitMs: number): GatewayError {
    const retryAfterMs = Math.max(1, Math.ceil(waitMs));
    if (rule !== undefined) {
      rule.refusals?.add(1);
      this.log(rule, subject, retryAfterMs);
    }
    return GatewayError.rateLimited(retryAfterMs);
  }

  private remember(refusal: KnownRefusal): void {
    const subject = (refusal.buckets[0] as RateLimitBucket).subject;
    let list = this.known.get(subject);
    if (list !== undefined) {
      const index = indexOfSet(list, refusal.buckets);
      if (index >= 0) this.forget(refusal.buckets, list, index);
    }
    if (this.knownCount >= RATE_LIMIT_KNOWN_REFUSALS_MAX) {
      // The least recent subject's oldest refusal goes.
      const oldest = this.known.entries().next().value as [string, KnownRefusal[]];
      this.forget((oldest[1][0] as KnownRefusal).buckets, oldest[1], 0);
    }
    list = this.known.get(subject);
    // Re-set: the subject becomes the most recent.
    this.known.delete(subject);
    if (list === undefined) list = [];
    list.push(refusal);
    this.known.set(subject, list);
    this.knownCount += 1;
  }

  private forget(buckets: readonly RateLimitBucket[], list: KnownRefusal[], index: number): void {
    list.splice(index, 1);
    this.knownCount -= 1;
    if (list.length === 0) this.known.delete((buckets[0] as RateLimitBucket).subject);
  }

  /** One line per (session, rule) per {@link RATE_LIMIT_LOG_INTERVAL_MS}; `refused` counts the refusals it stands for. */
  private log(state: RuleState, subject: RateLimitSubject, retryAfterMs: number): void {
    const now = this.clock.now();
    const { rule, logged } = state;
    const key = subject.deviceSessionId;
    const slot = logged.get(key);
    if (slot !== undefined && now - slot.at < RATE_LIMIT_LOG_INTERVAL_MS) {
      slot.refused += 1;
      return;
    }
    // Forget pairs whose interval is over, from the oldest of each rule (lines are re-set in time order).
    for (const other of this.byId.values()) {
      for (let i = 0; i < 4; i++) {
        const oldest = other.logged.entries().next();
        if (oldest.done === true || now - oldest.value[1].at < RATE_LIMIT_LOG_INTERVAL_MS) break;
        other.logged.delete(oldest.value[0]);
        this.loggedPairs -= 1;
      }
    }
    const refused = (slot?.refused ?? 0) + 1;
    if (logged.delete(key)) this.loggedPairs -= 1;
    // Bounded: a flood from more sessions than this in one interval is counted, not logged.
    if (this.loggedPairs >= RATE_LIMIT_LOG_MAX_KEYS) return;
    logged.set(key, { at: now, refused: 0 });
    this.loggedPairs += 1;
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

/** Where in `list` the refusal of the bucket set `buckets` is (the same rules and subjects, in order), or -1. */
function indexOfSet(list: readonly KnownRefusal[], buckets: readonly RateLimitBucket[]): number {
  next: for (let i = 0; i < list.length; i++) {
    const known = (list[i] as KnownRefusal).buckets;
    if (known.length !== buckets.length) continue;
    for (let j = 0; j < known.length; j++) {
      const a = known[j] as RateLimitBucket;
      const b = buckets[j] as RateLimitBucket;
      if (a.rule !== b.rule || a.subject !== b.subject) continue next;
    }
    return i;
  }
  return -1;
}

function bucketOf(rule: RateLimitRule, subject: RateLimitSubject): RateLimitBucket {
  return { rule: rule.id, intervalMs: rule.intervalMs, burst: rule.burst, subject: rule.scope === 'user' ? subject.userId : subject.deviceSessionId };
}

/** Label `route` of `gateway_rate_limited_total`: the rule's prefix, or `*` (bounded by the rules). */
export function routeLabel(rule: RateLimitRule): string {
  return rule.routePrefix === '' ? '*' : rule.routePrefix;
}

function labelsOf(rule: RateLimitRule): { scope: RateLimitRule['scope']; route: string } {
  return { scope: rule.scope, route: routeLabel(rule) };
}

import { createHash } from 'node:crypto';
import { replayKey, type RateLimitBucket, type RateLimiter, type RateLimitSubject, type RateLimitVerdict, type ReservedVerdict } from '@edge-gateway/core';
import type { RawReply } from './redis-client.js';
import type { RedisCommands } from './redis-commands.js';
import { partitionTag, userPartition } from './routed-keys.js';

/**
 * GCRA over the buckets and, when a reservation key is given, the replay reservation, in one
 * atomic step (SPEC §4 step 7, §5.2). KEYS[1]: the reservation; KEYS[2..]: the buckets.
 * ARGV[1]: the reservation's PX (`0`: no reservation, KEYS[1] only places the call); then per bucket its emission interval (ms) and burst.
 * Time is the server's (`TIME`), so the fleet's clocks do not matter. A refusal writes nothing
 * (`{0, index, retry_ms}`); otherwise every bucket's `tat` is stored (`PX` until it is full
 * again) and the reservation is made: `{1}` reserved, `{2}` it already existed. The arithmetic
 * is the core's `gcra`.
 */
export const RATE_LIMIT_SCRIPT = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = #KEYS - 1
local refused, retry = 0, 0
local nexts = {}
for i = 1, n do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tau = (burst - 1) * interval
  local start = now
  local tat = tonumber(redis.call('GET', KEYS[i + 1]) or '')
  if tat ~= nil and tat > now then start = tat end
  local bound = now + tau + interval
  if start > bound then start = bound end
  local allow = start - tau
  if now < allow then
    if refused == 0 then refused = i end
    if allow - now > retry then retry = allow - now end
  else
    nexts[i] = start + interval
  end
end
if refused > 0 then return {0, refused - 1, string.format('%.17g', retry)} end
for i = 1, n do
  redis.call('SET', KEYS[i + 1], string.format('%.17g', nexts[i]), 'PX', math.max(1, math.ceil(nexts[i] - now)))
end
if ARGV[1] == '0' then return {1} end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return {1} end
return {2}
`;

/** SHA1 of {@link RATE_LIMIT_SCRIPT}, for `EVALSHA`. */
export const RATE_LIMIT_SCRIPT_SHA = createHash('sha1').update(RATE_LIMIT_SCRIPT).digest('hex');

/**
 * Where the script goes when it may create a reservation: the replay store's own write path, so
 * a reservation made by the script counts under the same rules as one made by `SET NX` (with
 * `GATEWAY_REDIS_REPLAY_MIN_REPLICAS`, only once `WAIT` confirmed it; otherwise it is withdrawn).
 */
export interface ReservationWrites {
  /**
   * Sends `args` (a write that may create the reservation `key`; `created` tells from its reply
   * whether it did) and resolves with the reply, and whether a created reservation counts
   * (`durable`; false: it was withdrawn). Rejects when the write failed. `ttlMs`: the
   * reservation's time to live, for the journal of confirmed reservations.
   */
  writeReservation(key: string, args: readonly string[], created: (reply: RawReply) => boolean, ttlMs?: number): Promise<{ readonly reply: RawReply; readonly durable: boolean }>;
  /** Whether `key` is a reservation this process confirmed recently (a replay, without asking Redis; SPEC §5.2). */
  journaled?(key: string): boolean;
  /** Forgets a journaled reservation that was withdrawn. */
  forget?(key: string): void;
}

/** Options of {@link RedisRateLimiter}. */
export interface RedisRateLimiterOptions {
  /** `GATEWAY_REDIS_KEY_PREFIX`. */
  readonly keyPrefix: string;
  /**
   * Redis Cluster: the reservation key carries the user's partition tag (SPEC §5.2), like the
   * bucket keys, so one script reaches all of them in one slot. Off (one master): reservation
   * keys keep their usual form.
   */
  readonly cluster?: boolean;
  /** The replay store's write path for the calls that reserve (default: the client, no `WAIT`). */
  readonly reservations?: ReservationWrites;
}

/**
 * `GATEWAY_RATE_LIMIT_STORE=redis`: the rate limits counted across the fleet, in the replay
 * reservation's own round trip (one `EVALSHA` of {@link RATE_LIMIT_SCRIPT} does both), so a
 * limited command costs no more Redis round trips than an admitted one, and leaves no
 * reservation. Keys (SPEC §5.2): bucket `P + "rate:{" + T + "}:" + rule + ":" + subject` with
 * `T` the user's partition tag (SPEC §9.1), one number (`tat`, ms) that expires when the
 * bucket is full again; on a Cluster the reservation is `P + "replay:{" + T + "}:" + ds + "/" + req`.
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly keyPrefix: string;
  private readonly cluster: boolean;
  private readonly reservations: ReservationWrites | undefined;

  constructor(
    private readonly client: RedisCommands,
    options: RedisRateLimiterOptions,
  ) {
    this.keyPrefix = options.keyPrefix;
    this.cluster = options.cluster ?? false;
    this.reservations = options.reservations;
  }

  async acquire(buckets: readonly RateLimitBucket[], subject: RateLimitSubject): Promise<RateLimitVerdict> {
    // No reservation: a key of the user's slot only routes the call (never written).
    const verdict = await this.run(`${this.keyPrefix}rate:{${tagOf(subject.userId)}}`, '0', buckets, subject, false);
    return verdict.admitted ? ADMITTED : verdict;
  }

  acquireAndReserve(buckets: readonly RateLimitBucket[], subject: RateLimitSubject, requestId: string, ttlMs: number): Promise<ReservedVerdict> {
    return this.run(this.reservationKey(subject, requestId), String(Math.max(1, Math.ceil(ttlMs))), buckets, subject, true);
  }

  async releaseReservation(subject: RateLimitSubject, requestId: string): Promise<void> {
    const key = this.reservationKey(subject, requestId);
    this.reservations?.forget?.(key);
    await this.client.command(['DEL', key]);
  }

  /** The key of a reservation made by {@link acquireAndReserve}. */
  reservationKey(subject: RateLimitSubject, requestId: string): string {
    const key = replayKey(subject.deviceSessionId, requestId);
    return this.cluster ? `${this.keyPrefix}replay:{${tagOf(subject.userId)}}:${key}` : `${this.keyPrefix}replay:${key}`;
  }

  /** The key of a bucket. */
  bucketKey(bucket: RateLimitBucket, subject: RateLimitSubject): string {
    return `${this.keyPrefix}rate:{${tagOf(subject.userId)}}:${bucket.rule}:${bucket.subject}`;
  }

  private async run(reservation: string, ttl: string, buckets: readonly RateLimitBucket[], subject: RateLimitSubject, reserves: boolean): Promise<ReservedVerdict> {
    // Confirmed by this process before: a replay, whatever a new master holds (SPEC §5.2).
    if (reserves && this.reservations?.journaled?.(reservation) === true) return DUPLICATE;
    const args = ['EVALSHA', RATE_LIMIT_SCRIPT_SHA, String(buckets.length + 1), reservation];
    for (const bucket of buckets) args.push(this.bucketKey(bucket, subject));
    args.push(ttl);
    for (const bucket of buckets) args.push(String(bucket.intervalMs), String(bucket.burst));
    try {
      return await this.send(reservation, args, reserves, Number(ttl));
    } catch (error) {
      // A server that has not cached the script yet (restart, failover, new master): once more with its body.
      if (!(error instanceof Error) || !/NOSCRIPT/.test(`${error.message} ${String((error as { cause?: unknown }).cause)}`)) throw error;
      args[0] = 'EVAL';
      args[1] = RATE_LIMIT_SCRIPT;
      return this.send(reservation, args, reserves, Number(ttl));
    }
  }

  private async send(reservation: string, args: readonly string[], reserves: boolean, ttlMs: number): Promise<ReservedVerdict> {
    if (!reserves || this.reservations === undefined) return verdictOf(await this.client.command(args));
    const { reply, durable } = await this.reservations.writeReservation(reservation, args, createdReservation, ttlMs);
    const verdict = verdictOf(reply);
    return verdict === RESERVED && !durable ? NOT_REPLICATED : verdict;
  }
}

const ADMITTED: RateLimitVerdict = Object.freeze({ admitted: true });
const RESERVED: ReservedVerdict = Object.freeze({ admitted: true, reservation: 'reserved' });
const DUPLICATE: ReservedVerdict = Object.freeze({ admitted: true, reservation: 'duplicate' });
const NOT_REPLICATED: ReservedVerdict = Object.freeze({ admitted: true, reservation: 'not_replicated' });

/** The script's reply says it created the reservation: only then is a `WAIT` needed (a refusal or a replay wrote none). */
const createdReservation = (reply: RawReply): boolean => Array.isArray(reply) && reply[0] === 1;

function verdictOf(reply: RawReply): ReservedVerdict {
  if (!Array.isArray(reply)) throw new Error('rate limit script: unexpected reply');
  const [outcome, index, retry] = reply;
  if (outcome === 1) return RESERVED;
  if (outcome === 2) return DUPLICATE;
  if (outcome === 0 && typeof index === 'number' && typeof retry === 'string') return { admitted: false, refusedBy: index, retryAfterMs: Number(retry) };
  throw new Error('rate limit script: unexpected reply');
}

/** The user's partition tag (SPEC §9.1): every key of one user in one slot, braces in the id harmless. */
function tagOf(userId: string): string {
  return partitionTag(userPartition(userId));
}

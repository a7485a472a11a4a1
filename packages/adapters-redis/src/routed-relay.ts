import { GatewayMetrics, noopLogger, parseClientEvent, type Logger, type StreamEntry } from '@edge-gateway/core';
import { backoffDelay, type ReconnectOptions } from './backoff.js';
import { describeRedisError, type NodeRedisClient, type RawReply } from './redis-client.js';
import type { RedisCommands } from './redis-commands.js';
import { RoutedEventError, type RedisRoutedPublisher, type RoutedEvent } from './redis-routed-publisher.js';
import { userPartition } from './routed-keys.js';
import { parseEntries, parseXReadReply } from './stream-reply.js';

/** Options of {@link RedisRoutedRelay}. */
export interface RedisRoutedRelayOptions {
  /** The shared client (a cluster's routes each command to the stream's master). */
  readonly client: RedisCommands;
  /** `GATEWAY_CLIENT_EVENTS_REDIS_STREAM`: the legacy stream publishers still `XADD` to. */
  readonly streamKey: string;
  /** The consumer group shared by every relaying process (`P + "routed-relay"`). */
  readonly group: string;
  /** This process's consumer name (`<hostname>:<pid>`). */
  readonly consumer: string;
  readonly publisher: Pick<RedisRoutedPublisher, 'publish'>;
  /** `GATEWAY_PUSH_MAX_EVENT_BYTES`: larger entries are dropped as the gateway drops them. */
  readonly maxEventBytes?: number;
  /** `GATEWAY_PUSH_ROUTED_HISTORY_TTL`: an entry older than this is given up (its event would have expired anyway). */
  readonly historyTtlMs: number;
  /**
   * `GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE` (default 30 s): entries pending this long in another
   * consumer (a process that died) are claimed. This process keeps the entries it holds fresher
   * than that, so nobody claims them while it lives.
   */
  readonly claimIdleMs?: number;
  /** Backoff between publish attempts of a partition that failed (default 100 ms doubling up to 5 s). */
  readonly retry?: ReconnectOptions;
  /** Backoff between reconnects of the blocking read (default 100 ms doubling up to 5 s). */
  readonly reconnect?: ReconnectOptions;
  /** `XREADGROUP BLOCK` milliseconds at most (default 5000). */
  readonly blockMs?: number;
  /** `XREADGROUP` / `XAUTOCLAIM` `COUNT` (default 128). */
  readonly batchSize?: number;
  /** Entries held (not published yet) above which no new ones are read (default 10000). */
  readonly maxHeld?: number;
  /** Milliseconds since the epoch (default `Date.now`): stream ids carry Redis's clock. */
  readonly now?: () => number;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
}

/** One entry held for publishing. */
interface Held {
  readonly entry: StreamEntry;
  readonly event: RoutedEvent;
}

/** The held entries of one partition, published in stream order. */
interface Lane {
  readonly partition: number;
  readonly entries: Held[];
  /** Failed attempts in a row (backoff). */
  attempt: number;
  /** When the next attempt may run (ms, `now()` clock). */
  dueAt: number;
  /** When the first failure of the current run happened (for the recovery log). */
  failingSince: number | undefined;
}

/**
 * Resets the idle time of the entries still pending in this consumer (and only those, atomically):
 * `XCLAIM … 0 … JUSTID` of each id whose `XPENDING` owner is this consumer. Returns the ids kept.
 */
const TOUCH_SCRIPT = `local kept = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept`;

/** Ids per `XACK` or touch script. */
const CHUNK = 500;

/** How long a relay entry stays pending in a dead consumer before another claims it (`GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE` default, 30 s). */
export const DEFAULT_ROUTED_RELAY_CLAIM_IDLE_MS = 30_000;

/**
 * The migration relay of routed fan-out (SPEC §9.5): entries `XADD`ed to the legacy
 * client-events stream are published into the routed path, as one consumer of a group shared by
 * every relaying process, so each entry is relayed once.
 *
 * An entry is acknowledged (`XACK`) only once it is done: published, malformed (dropped and
 * counted as the gateway drops it), refused by the publish function, or older than the history
 * TTL (given up, counted). An entry that could not be published for a reason that can pass (the
 * partition's master is down, refuses writes, times out) is held and retried with backoff;
 * later entries of the same partition wait behind it, so each user's events keep their order.
 * A held entry stays pending in the group under this consumer, which keeps it fresh; entries a
 * process left pending when it died are claimed (`XAUTOCLAIM`) by another once idle for
 * `claimIdleMs`, and this process's own pending entries (a restart under the same name) are read
 * back at start.
 *
 * Delivery is at least once: a process that dies between publishing and `XACK`, or a publish
 * that timed out after the master ran it, publishes the event again (with a new id).
 */
export class RedisRoutedRelay {
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly claimIdleMs: number;
  private readonly blockMs: number;
  private readonly batchSize: number;
  private readonly maxHeld: number;
  private readonly now: () => number;
  private readonly lanes = new Map<number, Lane>();
  private readonly heldIds = new Set<string>();
  private acks: string[] = [];
  private state: 'new' | 'running' | 'stopped' = 'new';
  private loop: Promise<void> | undefined;
  private connection: NodeRedisClient | undefined;
  private wake: (() => void) | undefined;
  private nextClaimAt = 0;
  private nextTouchAt = 0;

  constructor(private readonly options: RedisRoutedRelayOptions) {
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = (options.logger ?? noopLogger).child({ component: 'routed-relay' });
    this.claimIdleMs = options.claimIdleMs ?? DEFAULT_ROUTED_RELAY_CLAIM_IDLE_MS;
    this.blockMs = options.blockMs ?? 5000;
    this.batchSize = options.batchSize ?? 128;
    this.maxHeld = options.maxHeld ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Entries held now (read or claimed, not done yet). */
  get held(): number {
    return this.heldIds.size;
  }

  /** Creates the group (at the stream's end) if missing and starts relaying in the background. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('RedisRoutedRelay can only be started once');
    this.state = 'running';
    try {
      await this.createGroup();
    } catch (err) {
      this.state = 'stopped';
      throw err;
    }
    const now = this.now();
    this.nextClaimAt = now;
    this.nextTouchAt = now + this.touchEveryMs();
    this.logger.info('routed relay started', { stream_key: this.options.streamKey, group: this.options.group, consumer: this.options.consumer, claim_idle_ms: this.claimIdleMs });
    this.loop = this.run();
  }

  /** @deprecated Use {@link RedisRoutedRelay.close} (one shutdown verb in every package). */
  stop(): Promise<void> {
    return this.close();
  }

  /** `await using x = new RedisRoutedRelay(…)`: {@link RedisRoutedRelay.close} at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Stops relaying (interrupting a blocking read) and resolves once the loop ended. Entries still
   * held stay pending in the group: another process claims them after `claimIdleMs`.
   */
  async close(): Promise<void> {
    if (this.state !== 'running') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopped';
    if (this.connection?.isOpen === true) this.connection.destroy();
    this.wake?.();
    await this.loop;
    this.loop = undefined;
    if (this.heldIds.size > 0) {
      this.logger.warn('routed relay stopped with entries held; another process claims them', { held: this.heldIds.size, claim_idle_ms: this.claimIdleMs });
    }
  }

  private touchEveryMs(): number {
    return Math.max(50, Math.floor(this.claimIdleMs / 3));
  }

  private async createGroup(): Promise<void> {
    try {
      await this.options.client.command(['XGROUP', 'CREATE', this.options.streamKey, this.options.group, '$', 'MKSTREAM']);
    } catch (err) {
      if (!/BUSYGROUP/.test(describeRedisError(err))) throw err;
    }
  }

  private async run(): Promise<void> {
    let attempt = 0;
    let first = true;
    while (this.state === 'running') {
      let connection: NodeRedisClient | undefined;
      try {
        connection = await this.options.client.blockingConnection(this.options.streamKey);
        this.connection = connection;
        if (this.state !== 'running') break;
        await connection.connect();
        if (this.state !== 'running') break;
        // Again on every connect: the stream (and its group) may have been deleted meanwhile.
        await this.createGroup();
        if (first) {
          // Entries pending under this consumer's name (a restart under the same name).
          await this.readOwnPending(connection);
          first = false;
        }
        attempt = 0;
        await this.work(connection);
      } catch (err) {
        if (this.state !== 'running') break;
        this.metrics.subscriberReconnects.add(1, { stream: 'client_events' });
        const delayMs = backoffDelay(attempt++, this.options.reconnect);
        this.logger.warn('routed relay read failed; reconnecting', { error: describeRedisError(err), retry_in_ms: delayMs, held: this.heldIds.size });
        await this.sleep(delayMs);
      } finally {
        if (connection !== undefined) {
          try {
            connection.destroy();
          } catch {
            // Already closed.
          }
        }
        if (this.connection === connection) this.connection = undefined;
      }
    }
  }

  /** One connection's life: publish what is due, keep held entries fresh, claim, read. */
  private async work(connection: NodeRedisClient): Promise<void> {
    while (this.state === 'running') {
      await this.touchIfDue();
      await this.publishDue();
      await this.flushAcks();
      if (this.state !== 'running') return;
      if (this.now() >= this.nextClaimAt) await this.claim();
      const wait = this.nextDueIn();
      if (this.heldIds.size >= this.maxHeld) {
        // Held entries wait for their partitions: read nothing more until some are done.
        await this.sleep(wait);
        continue;
      }
      const reply = await this.options.client.command(
        ['XREADGROUP', 'GROUP', this.options.group, this.options.consumer, 'COUNT', String(this.batchSize), 'BLOCK', String(Math.max(1, wait)), 'STREAMS', this.options.streamKey, '>'],
        { connection, timeoutMs: wait + this.options.client.commandTimeoutMs },
      );
      if (this.state !== 'running') return;
      this.take(parseXReadReply(reply), false);
    }
  }

  /** Milliseconds until the next retry, touch or claim is due, at most `blockMs`. */
  private nextDueIn(): number {
    const now = this.now();
    let next = Math.min(now + this.blockMs, this.nextClaimAt, this.heldIds.size > 0 ? this.nextTouchAt : Infinity);
    for (const lane of this.lanes.values()) next = Math.min(next, lane.dueAt);
    return Math.max(0, next - now);
  }

  /** `XREADGROUP … 0`: entries delivered to this consumer name before and never acknowledged. */
  private async readOwnPending(connection: NodeRedisClient): Promise<void> {
    let after = '0-0';
    for (;;) {
      const reply = await this.options.client.command(
        ['XREADGROUP', 'GROUP', this.options.group, this.options.consumer, 'COUNT', String(this.batchSize), 'STREAMS', this.options.streamKey, after],
        { connection },
      );
      const entries = parseXReadReply(reply);
      // Entries deleted from the stream come back without fields: nothing to publish.
      const gone = entries.filter((e) => Object.keys(e.fields).length === 0).map((e) => e.id);
      this.deleted(gone);
      const fresh = this.take(entries.filter((e) => Object.keys(e.fields).length > 0), true);
      if (fresh > 0) this.logger.info('routed relay took back its own pending entries', { entries: fresh });
      if (entries.length < this.batchSize) return;
      after = (entries[entries.length - 1] as StreamEntry).id;
    }
  }

  /**
   * Validates entries read or claimed and holds the publishable ones in their partition's lane
   * (behind entries already held there). Returns how many were new to this process.
   */
  private take(entries: readonly StreamEntry[], claimed: boolean): number {
    let fresh = 0;
    for (const entry of entries) {
      if (this.heldIds.has(entry.id)) continue;
      fresh += 1;
      this.metrics.streamEntriesConsumed.add(1, { stream: 'client_events' });
      const parsed = parseClientEvent(entry, { maxEventBytes: this.options.maxEventBytes });
      if (!parsed.ok) {
        this.metrics.streamEntriesMalformed.add(1, { stream: 'client_events' });
        this.logger.warn('malformed stream entry dropped', { stream: 'client_events', entry_id: entry.id, reason: parsed.reason });
        this.acks.push(entry.id);
        continue;
      }
      const { userId, deviceSessionId, eventType, payload } = parsed.event;
      const partition = userPartition(userId);
      let lane = this.lanes.get(partition);
      if (lane === undefined) {
        lane = { partition, entries: [], attempt: 0, dueAt: this.now(), failingSince: undefined };
        this.lanes.set(partition, lane);
      }
      lane.entries.push({ entry, event: { userId, deviceSessionId, eventType, payload } });
      this.heldIds.add(entry.id);
      this.metrics.routedRelayHeld.add(1);
    }
    if (claimed && fresh > 0) this.metrics.routedRelayClaimed.add(fresh);
    return fresh;
  }

  /** Publishes the held entries of every partition that is due, each lane in order until one fails. */
  private async publishDue(): Promise<void> {
    for (const lane of [...this.lanes.values()]) {
      if (this.state !== 'running') return;
      if (lane.dueAt > this.now()) continue;
      while (lane.entries.length > 0 && this.state === 'running') {
        // A lane of a slow master can take long: held entries must stay fresh meanwhile.
        await this.touchIfDue();
        const held = lane.entries[0] as Held;
        if (!this.heldIds.has(held.entry.id)) {
          // Taken over by another consumer (this process was unresponsive for claimIdleMs).
          lane.entries.shift();
          continue;
        }
        const outcome = await this.publishOne(held, lane);
        if (outcome === 'retry') {
          lane.attempt += 1;
          lane.dueAt = this.now() + backoffDelay(lane.attempt - 1, this.options.retry);
          break;
        }
        lane.entries.shift();
        this.release(held.entry.id);
        this.acks.push(held.entry.id);
        if (this.acks.length >= CHUNK) await this.flushAcks();
      }
      if (lane.entries.length === 0) {
        if (lane.failingSince !== undefined) {
          this.logger.info('routed relay publishing again', { partition: lane.partition, failed_attempts: lane.attempt, failing_ms: this.now() - lane.failingSince });
        }
        this.lanes.delete(lane.partition);
      }
    }
  }

  /** `done`: published, or given up with its reason; `retry`: kept for a later attempt. */
  private async publishOne(held: Held, lane: Lane): Promise<'done' | 'retry'> {
    const { entry, event } = held;
    const ageMs = this.now() - entryTimeMs(entry.id);
    if (ageMs > this.options.historyTtlMs) {
      this.metrics.routedRelayDropped.add(1, { reason: 'expired' });
      this.logger.error('routed relay gave an entry up: older than the history TTL', { entry_id: entry.id, partition: lane.partition, age_ms: ageMs, history_ttl_ms: this.options.historyTtlMs });
      return 'done';
    }
    try {
      await this.options.publisher.publish(event);
      return 'done';
    } catch (err) {
      if (err instanceof RoutedEventError || /\bWRONGTYPE\b/.test(describeRedisError(err))) {
        // It can never be published: the function refused it (or a key of the user has another type).
        this.metrics.routedRelayDropped.add(1, { reason: 'refused' });
        this.logger.error('routed relay entry refused; dropped', { entry_id: entry.id, partition: lane.partition, error: describeRedisError(err) });
        return 'done';
      }
      this.metrics.routedRelayRetries.add(1);
      const retryInMs = backoffDelay(lane.attempt, this.options.retry);
      if (lane.failingSince === undefined) {
        lane.failingSince = this.now();
        this.logger.warn('routed relay publish failed; entry kept for retry', {
          entry_id: entry.id,
          partition: lane.partition,
          held_in_partition: lane.entries.length,
          retry_in_ms: retryInMs,
          error: describeRedisError(err),
        });
      } else {
        this.logger.debug('routed relay publish failed again', { entry_id: entry.id, partition: lane.partition, attempt: lane.attempt + 1, error: describeRedisError(err) });
      }
      return 'retry';
    }
  }

  private release(id: string): void {
    if (this.heldIds.delete(id)) this.metrics.routedRelayHeld.add(-1);
  }

  /** `XACK`s the entries done; kept for the next try when the stream's master does not answer. */
  private async flushAcks(): Promise<void> {
    while (this.acks.length > 0) {
      const chunk = this.acks.slice(0, CHUNK);
      try {
        await this.options.client.command(['XACK', this.options.streamKey, this.options.group, ...chunk]);
      } catch (err) {
        this.logger.warn('routed relay XACK failed; retrying', { entries: this.acks.length, error: describeRedisError(err) });
        return;
      }
      this.acks = this.acks.slice(chunk.length);
    }
  }

  /** Keeps the entries this process holds fresh in the group, and forgets those another consumer took over. */
  private async touchIfDue(): Promise<void> {
    if (this.now() < this.nextTouchAt) return;
    this.nextTouchAt = this.now() + this.touchEveryMs();
    const ids = [...this.heldIds];
    for (let i = 0; i < ids.length; i += CHUNK) {
      const chunk = ids.slice(i, i + CHUNK);
      let kept: Set<string>;
      try {
        const reply = await this.options.client.command(['EVAL', TOUCH_SCRIPT, '1', this.options.streamKey, this.options.group, this.options.consumer, ...chunk]);
        kept = new Set(Array.isArray(reply) ? reply.map(String) : []);
      } catch (err) {
        this.logger.warn('routed relay could not refresh its held entries', { entries: chunk.length, error: describeRedisError(err) });
        return;
      }
      const lost = chunk.filter((id) => !kept.has(id));
      for (const id of lost) this.release(id);
      if (lost.length > 0) {
        this.logger.warn('routed relay entries taken over by another consumer', { entries: lost.length, first_entry_id: lost[0] });
      }
    }
  }

  /** `XAUTOCLAIM` of entries idle for `claimIdleMs` (left pending by a process that died). */
  private async claim(): Promise<void> {
    this.nextClaimAt = this.now() + Math.max(100, Math.floor(this.claimIdleMs / 2));
    let cursor = '0-0';
    // Bounded per sweep; the next sweep goes on.
    for (let page = 0; page < 10; page++) {
      let reply: RawReply;
      try {
        reply = await this.options.client.command([
          'XAUTOCLAIM', this.options.streamKey, this.options.group, this.options.consumer, String(this.claimIdleMs), cursor, 'COUNT', String(this.batchSize),
        ]);
      } catch (err) {
        this.logger.warn('routed relay claim failed', { error: describeRedisError(err) });
        return;
      }
      if (!Array.isArray(reply)) return;
      const entries = parseEntries(reply[1] ?? null).filter((e) => !this.heldIds.has(e.id));
      this.deleted(Array.isArray(reply[2]) ? reply[2].map(String) : []);
      const taken = this.take(entries, true);
      if (taken > 0) this.logger.warn('routed relay claimed entries another consumer left pending', { entries: taken, first_entry_id: entries[0]?.id, claim_idle_ms: this.claimIdleMs });
      cursor = String(reply[0]);
      if (cursor === '0-0') return;
    }
  }

  /** Pending entries whose stream entry is gone (trimmed or deleted before they were relayed). */
  private deleted(ids: readonly string[]): void {
    if (ids.length === 0) return;
    this.metrics.routedRelayDropped.add(ids.length, { reason: 'deleted' });
    this.logger.error('routed relay entries deleted from the stream before they were relayed', { entries: ids.length, first_entry_id: ids[0] });
    this.acks.push(...ids);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    }).finally(() => {
      this.wake = undefined;
    });
  }
}

/** The millisecond part of a stream id. */
function entryTimeMs(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

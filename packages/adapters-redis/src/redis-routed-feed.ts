import { GatewayMetrics, isStreamId, noopLogger, type Logger, type SequencedDelivery, type SequencedEvent, type UserFeed } from '@edge-gateway/core';
import { UserSequencer } from '@edge-gateway/core/internal';
import { describeRedisError } from './redis-client.js';
import type { RedisClusterClient } from './redis-cluster-client.js';
import { RedisUserHistory, epochLink } from './redis-user-history.js';
import { routedUserKeys, type RoutedUserKeys } from './routed-keys.js';

/** Where routed events go: the core's client-events handler (same parse, sign, hub path as stream mode). */
export type RoutedDelivery = SequencedDelivery;

/** Options of {@link RedisRoutedFeed}. */
export interface RedisRoutedFeedOptions {
  readonly client: RedisClusterClient;
  /** `GATEWAY_REDIS_KEY_PREFIX`. */
  readonly keyPrefix: string;
  readonly delivery: RoutedDelivery;
  /** Channel messages longer than this are not parsed; the user is re-read from history instead. */
  readonly maxMessageBytes: number;
  /** History entries read per `XRANGE` when filling a gap (default 500). */
  readonly historyPage?: number;
  /** Delays of the re-syncs after a node (re)connects or a channel moves (default 200 and 2000 ms). */
  readonly resyncDelaysMs?: readonly number[];
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
}

interface UserState {
  readonly userId: string;
  readonly keys: RoutedUserKeys;
  refs: number;
  /** Settles once subscribed and the baseline (offset, epoch) is known. */
  ready: Promise<void>;
  settle?: { resolve: () => void; reject: (err: unknown) => void };
}

/**
 * Routed fan-out on the gateway side (SPEC §9.3): a {@link UserFeed} that `SSUBSCRIBE`s the
 * channels of exactly the users this process holds streams for, batched per partition (one
 * command per partition per event-loop turn; node-redis keeps one sharded PUB/SUB connection
 * per master and routes each batch to the master of its slot), and unsubscribes after a
 * user's last stream closed.
 *
 * Every message carries the user's offset and epoch; the core's `UserSequencer` keeps each
 * user's events in order and complete (gap fill from the user's history stream; a new epoch
 * that does not continue what was delivered, or a history that lost delivered events in a
 * failover → `gateway.resume_incomplete`). This class only subscribes, parses messages and
 * triggers re-syncs: when a node connection comes back or a channel moves (failover), every
 * local user is re-synced from history, so nothing the history kept is lost and what it lost
 * after delivery is told.
 */
export class RedisRoutedFeed implements UserFeed {
  private readonly users = new Map<string, UserState>();
  private readonly byChannel = new Map<string, UserState>();
  private readonly toSubscribe = new Map<number, UserState[]>();
  private readonly toUnsubscribe = new Map<number, UserState[]>();
  private flushScheduled = false;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly sequencer: UserSequencer;
  private readonly listener = (message: string, channel: string): void => this.onMessage(message, channel);
  private readonly resyncTimers = new Set<NodeJS.Timeout>();
  private closed = false;
  private readonly onTopologyChange = (): void => this.scheduleResync();

  constructor(private readonly options: RedisRoutedFeedOptions) {
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = (options.logger ?? noopLogger).child({ component: 'routed-feed' });
    this.sequencer = new UserSequencer({
      history: new RedisUserHistory(options.client, options.keyPrefix, { metrics: this.metrics, logger: this.logger }),
      delivery: options.delivery,
      metrics: this.metrics,
      ...(options.historyPage === undefined ? {} : { page: options.historyPage }),
      onReadFailure: () => this.scheduleResync(),
      logger: this.logger,
    });
  }

  /** Starts watching the cluster's node connections (re-sync triggers). */
  start(): void {
    const raw = this.options.client.raw;
    raw.on('node-ready', this.onTopologyChange);
    raw.on('node-disconnect', this.onTopologyChange);
    raw.on('sharded-channel-moved-error', this.onTopologyChange);
  }

  /** @deprecated Use {@link RedisRoutedFeed.close} (one shutdown verb in every package). */
  stop(): void {
    void this.close();
  }

  /** `await using x = new RedisRoutedFeed(…)`: {@link RedisRoutedFeed.close} at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Stops re-syncing and drops every subscription (the cluster client is closed by its owner). */
  async close(): Promise<void> {
    this.closed = true;
    const raw = this.options.client.raw;
    raw.off('node-ready', this.onTopologyChange);
    raw.off('node-disconnect', this.onTopologyChange);
    raw.off('sharded-channel-moved-error', this.onTopologyChange);
    for (const timer of this.resyncTimers) clearTimeout(timer);
    this.resyncTimers.clear();
    for (const state of this.users.values()) state.settle?.reject(new Error('routed feed stopped'));
  }

  /**
   * Re-reads every followed user's history now, as after a reconnect: what is missing is
   * delivered, and events the history lost are told (SPEC §9.3).
   */
  resync(): Promise<void> {
    return this.sequencer.resyncAll();
  }

  /** Users followed now. */
  get size(): number {
    return this.users.size;
  }

  follow(userId: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('routed feed stopped'));
    const existing = this.users.get(userId);
    if (existing !== undefined) {
      existing.refs += 1;
      return existing.ready;
    }
    const keys = routedUserKeys(this.options.keyPrefix, userId);
    let settle: UserState['settle'];
    const ready = new Promise<void>((resolve, reject) => {
      settle = { resolve, reject };
    });
    const state: UserState = { userId, keys, refs: 1, ready, settle };
    ready.catch(() => undefined);
    this.users.set(userId, state);
    this.sequencer.add(userId);
    this.byChannel.set(keys.channel, state);
    push(this.toSubscribe, keys.partition, state);
    this.scheduleFlush();
    return ready;
  }

  unfollow(userId: string): void {
    const state = this.users.get(userId);
    if (state === undefined) return;
    state.refs -= 1;
    if (state.refs > 0) return;
    this.users.delete(userId);
    this.byChannel.delete(state.keys.channel);
    this.sequencer.remove(userId);
    push(this.toUnsubscribe, state.keys.partition, state);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const unsubscribe = [...this.toUnsubscribe.values()];
    this.toUnsubscribe.clear();
    const subscribe = [...this.toSubscribe.values()];
    this.toSubscribe.clear();
    const cluster = this.options.client.raw;
    await Promise.all([
      ...unsubscribe.map(async (states) => {
        // A user followed again meanwhile has a new state under the same channel: keep it.
        const channels = states.filter((s) => this.byChannel.get(s.keys.channel) === undefined).map((s) => s.keys.channel);
        if (channels.length === 0) return;
        try {
          await cluster.sUnsubscribe(channels, this.listener);
        } catch (err) {
          this.logger.warn('routed unsubscribe failed', { channels: channels.length, error: describeRedisError(err) });
        }
      }),
      ...subscribe.map(async (states) => {
        const live = states.filter((s) => this.users.get(s.userId) === s);
        if (live.length === 0) return;
        try {
          await cluster.sSubscribe(
            live.map((s) => s.keys.channel),
            this.listener,
          );
          // Where each history stands right after subscribing: later messages are new.
          await Promise.all(live.map((s) => this.sequencer.baseline(s.userId)));
          for (const s of live) s.settle?.resolve();
        } catch (err) {
          this.logger.warn('routed subscribe failed', { users: live.length, error: describeRedisError(err) });
          for (const s of live) s.settle?.reject(err);
        }
      }),
    ]);
  }

  private onMessage(message: string, channel: string): void {
    const state = this.byChannel.get(channel);
    if (state === undefined) return;
    const parsed = message.length <= this.options.maxMessageBytes ? parseChannelMessage(message, state.userId) : undefined;
    if (parsed === undefined) {
      // The history holds the same event: read it there (the handler drops it if malformed).
      this.logger.warn('routed message unreadable; reading the user history', { partition: state.keys.partition, bytes: message.length });
      void this.sequencer.resync(state.userId);
      return;
    }
    this.sequencer.receive(state.userId, parsed);
  }

  /**
   * Re-syncs every local user soon, and once more a little later (subscriptions move back
   * asynchronously). Triggers that arrive while re-syncs are scheduled join them: a read that
   * fails (its master is down) retries at that pace, not once per failure.
   */
  private scheduleResync(): void {
    if (this.closed || this.resyncTimers.size > 0) return;
    for (const delay of this.options.resyncDelaysMs ?? [200, 2000]) {
      const timer = setTimeout(() => {
        this.resyncTimers.delete(timer);
        this.metrics.subscriberReconnects.add(1, { stream: 'client_events' });
        void this.sequencer.resyncAll();
      }, delay);
      this.resyncTimers.add(timer);
    }
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/** Parses the publish function's JSON message; undefined when it is not one for `userId`. */
function parseChannelMessage(message: string, userId: string): SequencedEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const m = value as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const id = str(m['id']);
  const epoch = str(m['epoch']);
  const offset = m['offset'];
  if (id === undefined || !isStreamId(id) || epoch === undefined || typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 1) return undefined;
  if (m['user_id'] !== userId) return undefined;
  const fields: Record<string, string> = { user_id: userId };
  for (const name of ['device_session_id', 'event_type', 'payload_base64']) {
    const v = str(m[name]);
    if (v !== undefined) fields[name] = v;
  }
  const previous = epochLink(m);
  return { id, offset, epoch, entry: { id, fields }, ...(previous === undefined ? {} : { previous }) };
}

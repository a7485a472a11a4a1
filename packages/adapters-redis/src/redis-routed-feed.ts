import { GatewayMetrics, compareStreamIds, isStreamId, noopLogger, type Logger, type StreamEntry, type UserFeed } from '@edge-gateway/core';
import { describeRedisError } from './redis-client.js';
import type { RedisClusterClient } from './redis-cluster-client.js';
import { routedUserKeys, type RoutedUserKeys } from './routed-keys.js';
import { flatToRecord } from './redis-session-store.js';
import { parseEntries } from './stream-reply.js';

/** Where routed events go: the core's client-events handler (same parse, sign, hub path as stream mode). */
export interface RoutedDelivery {
  handleBatch(entries: readonly StreamEntry[]): Promise<void>;
  /** Tells every stream of the user that continuity ended (`gateway.resume_incomplete`). */
  discontinuity(userId: string): number;
}

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

/** One event as the publish function sends it on a user's channel. */
interface ChannelMessage {
  readonly id: string;
  readonly offset: number;
  readonly epoch: string;
  readonly entry: StreamEntry;
}

interface UserState {
  readonly userId: string;
  readonly keys: RoutedUserKeys;
  refs: number;
  /** Settles once subscribed and the baseline (offset, epoch) is known. */
  ready: Promise<void>;
  settle?: { resolve: () => void; reject: (err: unknown) => void };
  baselined: boolean;
  epoch: string;
  offset: number;
  lastId: string;
  syncing: boolean;
  /** Sync again when the current one ends (a trigger arrived while syncing). */
  again: boolean;
  pending: ChannelMessage[];
}

/**
 * Routed fan-out on the gateway side (SPEC §9.3): a {@link UserFeed} that `SSUBSCRIBE`s the
 * channels of exactly the users this process holds streams for, batched per partition (one
 * command per partition per event-loop turn; node-redis keeps one sharded PUB/SUB connection
 * per master and routes each batch to the master of its slot), and unsubscribes after a
 * user's last stream closed.
 *
 * Every message carries the user's offset and epoch. In-order messages go straight to the
 * core handler; an offset gap (a lost message) is filled from the user's history stream; a
 * new epoch (the history was reset) ends continuity with `gateway.resume_incomplete`, then
 * the new epoch is read from its start. When a node connection comes back or a channel moves
 * (failover), every local user is re-synced from history, so nothing the history kept is lost.
 */
export class RedisRoutedFeed implements UserFeed {
  private readonly users = new Map<string, UserState>();
  private readonly byChannel = new Map<string, UserState>();
  private readonly toSubscribe = new Map<number, UserState[]>();
  private readonly toUnsubscribe = new Map<number, UserState[]>();
  private flushScheduled = false;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly page: number;
  private readonly listener = (message: string, channel: string): void => this.onMessage(message, channel);
  private readonly resyncTimers = new Set<NodeJS.Timeout>();
  private closed = false;
  private readonly onTopologyChange = (): void => this.scheduleResync();

  constructor(private readonly options: RedisRoutedFeedOptions) {
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = (options.logger ?? noopLogger).child({ component: 'routed-feed' });
    this.page = options.historyPage ?? 500;
  }

  /** Starts watching the cluster's node connections (re-sync triggers). */
  start(): void {
    const raw = this.options.client.raw;
    raw.on('node-ready', this.onTopologyChange);
    raw.on('node-disconnect', this.onTopologyChange);
    raw.on('sharded-channel-moved-error', this.onTopologyChange);
  }

  /** Stops re-syncing and drops every subscription (the cluster client is closed by its owner). */
  stop(): void {
    this.closed = true;
    const raw = this.options.client.raw;
    raw.off('node-ready', this.onTopologyChange);
    raw.off('node-disconnect', this.onTopologyChange);
    raw.off('sharded-channel-moved-error', this.onTopologyChange);
    for (const timer of this.resyncTimers) clearTimeout(timer);
    this.resyncTimers.clear();
    for (const state of this.users.values()) state.settle?.reject(new Error('routed feed stopped'));
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
    const state: UserState = { userId, keys, refs: 1, ready, settle, baselined: false, epoch: '', offset: 0, lastId: '0-0', syncing: false, again: false, pending: [] };
    ready.catch(() => undefined);
    this.users.set(userId, state);
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
          await Promise.all(live.map((s) => this.baseline(s)));
          for (const s of live) s.settle?.resolve();
        } catch (err) {
          this.logger.warn('routed subscribe failed', { users: live.length, error: describeRedisError(err) });
          for (const s of live) s.settle?.reject(err);
        }
      }),
    ]);
  }

  /** Where the user's history stands right after subscribing: later messages are new. */
  private async baseline(state: UserState): Promise<void> {
    const meta = await this.readMeta(state);
    state.epoch = meta.epoch;
    state.offset = meta.offset;
    state.lastId = meta.lastId;
    state.baselined = true;
    this.drainPending(state);
  }

  private async readMeta(state: UserState): Promise<{ epoch: string; offset: number; lastId: string }> {
    const reply = await this.options.client.command(['HGETALL', state.keys.meta]);
    const meta = flatToRecord(reply);
    const offset = Number(meta['offset'] ?? 0);
    return {
      epoch: meta['epoch'] ?? '',
      offset: Number.isSafeInteger(offset) && offset >= 0 ? offset : 0,
      lastId: meta['last_id'] !== undefined && isStreamId(meta['last_id']) ? meta['last_id'] : '0-0',
    };
  }

  private onMessage(message: string, channel: string): void {
    const state = this.byChannel.get(channel);
    if (state === undefined) return;
    const parsed = message.length <= this.options.maxMessageBytes ? parseChannelMessage(message, state.userId) : undefined;
    if (parsed === undefined) {
      // The history holds the same event: read it there (the handler drops it if malformed).
      this.logger.warn('routed message unreadable; reading the user history', { channel_user_partition: state.keys.partition, bytes: message.length });
      void this.sync(state);
      return;
    }
    if (!state.baselined || state.syncing) {
      state.pending.push(parsed);
      return;
    }
    this.apply(state, parsed);
  }

  /**
   * One message: drop it when its id is not after the last delivered one (already delivered,
   * e.g. read from history meanwhile), deliver it when its offset is the next one, otherwise
   * read the history first. Ids, not offsets, decide what was delivered: after a failover
   * that lost unreplicated writes, the new master reuses their offsets with newer ids.
   */
  private apply(state: UserState, message: ChannelMessage): void {
    if (message.epoch !== state.epoch) {
      if (state.epoch !== '') this.options.delivery.discontinuity(state.userId);
      state.epoch = message.epoch;
      state.offset = 0;
      state.lastId = '0-0';
    }
    if (compareStreamIds(message.id, state.lastId) <= 0) return;
    if (message.offset === state.offset + 1) {
      state.offset = message.offset;
      state.lastId = message.id;
      void this.deliver([message.entry]);
      return;
    }
    state.pending.push(message);
    void this.sync(state);
  }

  private drainPending(state: UserState): void {
    const pending = state.pending.sort((a, b) => compareStreamIds(a.id, b.id));
    state.pending = [];
    for (const message of pending) {
      if (state.syncing) {
        state.pending.push(message);
      } else {
        this.apply(state, message);
      }
    }
  }

  /** Reads the user's history after the last delivered entry and delivers what is missing. */
  private async sync(state: UserState): Promise<void> {
    if (state.syncing) {
      state.again = true;
      return;
    }
    state.syncing = true;
    try {
      do {
        state.again = false;
        await this.syncOnce(state);
      } while (state.again && this.users.get(state.userId) === state);
    } catch (err) {
      this.logger.warn('routed history read failed; retrying on the next trigger', { error: describeRedisError(err) });
      this.scheduleResync();
    } finally {
      state.syncing = false;
    }
    if (this.users.get(state.userId) === state) this.drainPending(state);
  }

  private async syncOnce(state: UserState): Promise<void> {
    const meta = await this.readMeta(state);
    if (meta.epoch !== '' && state.epoch !== '' && meta.epoch !== state.epoch) {
      this.options.delivery.discontinuity(state.userId);
      state.epoch = meta.epoch;
      state.offset = 0;
      state.lastId = '0-0';
    }
    if (state.epoch === '') state.epoch = meta.epoch;
    if (compareStreamIds(meta.lastId, state.lastId) <= 0) {
      // Nothing newer. A lower offset means a failover lost writes we had delivered: the next
      // event continues from the history's offset (those events are gone for everyone).
      if (meta.epoch === state.epoch && meta.offset < state.offset) state.offset = meta.offset;
      return;
    }
    let reported = false;
    for (;;) {
      const reply = await this.options.client.command(['XRANGE', state.keys.history, `(${state.lastId}`, '+', 'COUNT', String(this.page)]);
      const entries = parseEntries(reply);
      if (entries.length === 0) break;
      const fresh: StreamEntry[] = [];
      for (const entry of entries) {
        state.lastId = entry.id;
        const offset = Number(entry.fields['offset']);
        if (entry.fields['epoch'] !== state.epoch || !Number.isSafeInteger(offset) || offset < 1) continue;
        if (offset > state.offset + 1 && !reported) {
          // Trimmed away before we read it: the stream misses events.
          reported = true;
          this.options.delivery.discontinuity(state.userId);
        }
        state.offset = offset;
        fresh.push(entry);
      }
      if (fresh.length > 0) await this.deliver(fresh);
      if (entries.length < this.page) break;
    }
  }

  private async deliver(entries: readonly StreamEntry[]): Promise<void> {
    try {
      await this.options.delivery.handleBatch(entries);
    } catch (err) {
      this.logger.error('routed delivery failed', { entry_id: entries[0]?.id, error: describeRedisError(err) });
    }
  }

  /** Re-syncs every local user soon, and once more a little later (subscriptions move back asynchronously). */
  private scheduleResync(): void {
    if (this.closed) return;
    for (const delay of this.options.resyncDelaysMs ?? [200, 2000]) {
      const timer = setTimeout(() => {
        this.resyncTimers.delete(timer);
        this.metrics.subscriberReconnects.add(1, { stream: 'client_events' });
        for (const state of this.users.values()) if (state.baselined) void this.sync(state);
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
function parseChannelMessage(message: string, userId: string): ChannelMessage | undefined {
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
  return { id, offset, epoch, entry: { id, fields } };
}

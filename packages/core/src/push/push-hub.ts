import type { GatewayEvent } from '../domain.js';
import { GatewayError, GatewayErrorCode } from '../errors.js';
import { GatewayMetrics, type StreamCloseReason } from '../observability/metrics.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { UserFeed } from '../ports/user-feed.port.js';
import { compareStreamIds } from '../validation.js';

/**
 * The transport end of a push stream (a gRPC server call, a WebSocket…). The hub calls it
 * from the thread that published; it must not throw.
 */
export interface PushSink {
  /**
   * Hands one event to the transport. Return `false` when the transport's own buffer is full
   * (e.g. gRPC `call.write()` returned false): the hub then queues further events until
   * `PushStream.resume()` is called, and closes the stream if its queue overflows.
   */
  write(event: GatewayEvent): boolean;
  /**
   * The stream is over. `error` is the terminal status to report (revoked, overflow,
   * shutdown); `undefined` when the client cancelled and nothing needs to be sent.
   */
  end(error: GatewayError | undefined): void;
}

export interface RegisterOptions {
  readonly userId: string;
  readonly deviceSessionId: string;
  readonly sink: PushSink;
}

export interface StartOptions {
  /**
   * Live events with an id at or before this stream id are dropped (already replayed): those
   * queued while held, and those the event source hands over later (its read may lag behind
   * the history read that produced the replay).
   */
  readonly skipThroughEventId?: string;
}

export interface PushHubOptions {
  /** Events queued per stream before it overflows (`GATEWAY_PUSH_STREAM_BUFFER`). */
  readonly bufferSize: number;
  /**
   * Payload bytes queued per stream before it overflows (`GATEWAY_PUSH_STREAM_BUFFER_BYTES`,
   * default {@link DEFAULT_PUSH_STREAM_BUFFER_BYTES}): the count alone let a few non-reading
   * streams hold hundreds of MiB of large events.
   */
  readonly bufferBytes?: number;
  /**
   * Open streams per device session (`GATEWAY_PUSH_MAX_STREAMS_PER_SESSION`, default
   * {@link DEFAULT_PUSH_MAX_STREAMS_PER_SESSION}). Registering one more closes the session's
   * oldest stream with `RESOURCE_EXHAUSTED` `push stream replaced by a newer stream`: a device
   * reconnecting over a dead connection must not be locked out by its own half-open streams.
   */
  readonly maxStreamsPerSession?: number;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
  /**
   * Per-user event source (routed fan-out): told about every stream registered and closed, so
   * it follows exactly the users this process holds. Absent for a broadcast source.
   */
  readonly feed?: UserFeed;
}

/** `GATEWAY_PUSH_STREAM_BUFFER_BYTES` default (4 MiB). */
export const DEFAULT_PUSH_STREAM_BUFFER_BYTES = 4 * 1024 * 1024;
/** `GATEWAY_PUSH_MAX_STREAMS_PER_SESSION` default. */
export const DEFAULT_PUSH_MAX_STREAMS_PER_SESSION = 4;

const RESOLVED = Promise.resolve();

const CLOSE_REASON: Record<GatewayErrorCode, StreamCloseReason> = {
  [GatewayErrorCode.FailedPrecondition]: 'revoked',
  [GatewayErrorCode.ResourceExhausted]: 'overflow',
  [GatewayErrorCode.Unavailable]: 'shutdown',
  [GatewayErrorCode.InvalidArgument]: 'error',
  [GatewayErrorCode.Unauthenticated]: 'error',
  [GatewayErrorCode.AlreadyExists]: 'error',
  [GatewayErrorCode.Unimplemented]: 'error',
  [GatewayErrorCode.DeadlineExceeded]: 'error',
  [GatewayErrorCode.Internal]: 'error',
};

/**
 * One registered push stream. Created held: live events queue up until `start()` hands the
 * bootstrap (and any replayed history) to the sink first.
 */
export class PushStream {
  private queue: GatewayEvent[] = [];
  private head = 0;
  /** Payload bytes of the live events in the queue (those handed to `start()` are not counted). */
  private liveBytes = 0;
  /** Events handed to `start()` still waiting at the front of the queue; not counted against the buffer. */
  private firstPending = 0;
  private skipThrough: string | undefined;
  /** Id of the last client event handed to this stream (queued or written), in stream order. */
  private lastEventId = '';
  private held = true;
  /** Id of the newest live event dropped while held (the held queue keeps the newest events). */
  private droppedWhileHeld: string | undefined;
  private writable = true;
  private closedWith: { error: GatewayError | undefined } | undefined;

  /** @internal created by `PushHub.register` */
  constructor(
    private readonly hub: PushHub,
    readonly userId: string,
    readonly deviceSessionId: string,
    private readonly sink: PushSink,
    private readonly bufferSize: number,
    private readonly bufferBytes: number,
    /**
     * Settles once the hub's feed follows this stream's user (resolved at once without a
     * feed); a caller starts the stream only after it, so no event published after the
     * bootstrap is missed.
     */
    readonly following: Promise<void> = RESOLVED,
  ) {}

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** The terminal error, once closed (undefined for a client cancel). */
  get closeError(): GatewayError | undefined {
    return this.closedWith?.error;
  }

  /** Events waiting for the transport. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /**
   * Delivers `first` (bootstrap, resume notice, replayed history) before any queued live
   * event, then switches to live delivery.
   */
  start(first: readonly GatewayEvent[], options: StartOptions = {}): void {
    if (this.closed || !this.held) return;
    this.held = false;
    const live = this.queue.slice(this.head);
    const skip = options.skipThroughEventId;
    this.skipThrough = skip;
    const kept = skip === undefined ? live : live.filter((e) => e.eventId === '' || compareStreamIds(e.eventId, skip) > 0);
    this.queue = [...first, ...kept];
    // The live events kept were counted when queued; the replayed ones come before them.
    for (const event of this.queue) if (event.eventId !== '') this.lastEventId = event.eventId;
    this.liveBytes = 0;
    for (const event of kept) this.liveBytes += event.payload.length;
    this.head = 0;
    // `first` may be longer than the buffer (a resume); only live overflow closes the stream.
    this.firstPending = first.length;
    this.flush();
  }

  /**
   * True when live events were dropped while the stream was held (a burst longer than the
   * buffer during a resume) and not all of them are at or before `coveredThrough`, the last
   * history id the caller replays: the stream then misses events and the caller must say so
   * (`gateway.resume_incomplete`).
   */
  lostWhileHeld(coveredThrough: string | undefined): boolean {
    if (this.droppedWhileHeld === undefined) return false;
    return coveredThrough === undefined || compareStreamIds(this.droppedWhileHeld, coveredThrough) > 0;
  }

  /** The transport can take more (e.g. gRPC `drain`): deliver what is queued. */
  resume(): void {
    if (this.closed) return;
    this.writable = true;
    this.flush();
  }

  /**
   * Whether this stream was handed a client event after `after` (any, when `after` is
   * undefined): such an event may be one a failover lost.
   */
  handedAfter(after: string | undefined): boolean {
    if (this.lastEventId === '') return false;
    return after === undefined || compareStreamIds(this.lastEventId, after) > 0;
  }

  /**
   * A failover lost the history after `after` (undefined: an unknown part of it): ids after it
   * may now name other entries, so live events there are no longer skipped as replayed.
   */
  forgetAfter(after: string | undefined): void {
    if (this.skipThrough === undefined) return;
    if (after === undefined) this.skipThrough = undefined;
    else if (compareStreamIds(this.skipThrough, after) > 0) this.skipThrough = after;
  }

  /** The client went away: leave the hub without sending a status. */
  cancel(): void {
    this.hub.detach(this, 'client_cancelled', undefined, false);
  }

  /** @internal */
  enqueue(event: GatewayEvent): void {
    if (this.closed) return;
    if (event.eventId !== '') {
      if (this.skipThrough !== undefined && compareStreamIds(event.eventId, this.skipThrough) <= 0) return;
      this.lastEventId = event.eventId;
    }
    if (!this.held && this.writable && this.queued === 0) {
      this.deliver(event);
      return;
    }
    const size = event.payload.length;
    if (this.held) {
      // A resume is replaying history: keep the newest live events; what is dropped is
      // either replayed from history or reported by the caller (see lostWhileHeld).
      if (size > this.bufferBytes) {
        // Larger than the byte bound on its own: it alone is dropped.
        this.noteDropped(event.eventId);
        return;
      }
      while (!this.fits(size)) {
        const dropped = this.queue[this.head] as GatewayEvent;
        this.head += 1;
        this.liveBytes -= dropped.payload.length;
        this.noteDropped(dropped.eventId);
      }
    } else if (!this.fits(size)) {
      this.hub.detach(this, 'overflow', GatewayError.overflow(), true);
      return;
    }
    this.queue.push(event);
    this.liveBytes += size;
  }

  /** Remembers the newest live event dropped while held. */
  private noteDropped(eventId: string): void {
    if (eventId === '') return;
    if (this.droppedWhileHeld === undefined || compareStreamIds(eventId, this.droppedWhileHeld) > 0) this.droppedWhileHeld = eventId;
  }

  /** Whether one more live event of `size` payload bytes stays within both bounds. */
  private fits(size: number): boolean {
    return this.queued - this.firstPending < this.bufferSize && this.liveBytes + size <= this.bufferBytes;
  }

  /** @internal */
  markClosed(error: GatewayError | undefined, notify: boolean): boolean {
    if (this.closedWith !== undefined) return false;
    this.closedWith = { error };
    this.queue = [];
    this.head = 0;
    this.firstPending = 0;
    this.liveBytes = 0;
    if (notify) this.sink.end(error);
    return true;
  }

  private deliver(event: GatewayEvent): void {
    this.hub.countDelivered();
    if (!this.sink.write(event)) this.writable = false;
  }

  private flush(): void {
    while (this.writable && !this.held && !this.closed && this.head < this.queue.length) {
      const event = this.queue[this.head] as GatewayEvent;
      this.head += 1;
      if (this.firstPending > 0) this.firstPending -= 1;
      else this.liveBytes -= event.payload.length;
      this.deliver(event);
    }
    this.hub.recordDelivered();
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * In-memory push hub (SPEC §8.3): streams indexed by user and by session, strict targeting,
 * a bounded queue per stream, revocation and shutdown closing.
 */
export class PushHub {
  private readonly byUser = new Map<string, Set<PushStream>>();
  private deliveredNotRecorded = 0;
  private readonly bySession = new Map<string, Set<PushStream>>();
  private closing: GatewayError | undefined;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  /** Payload bytes queued per stream before it overflows (`GATEWAY_PUSH_STREAM_BUFFER_BYTES`). */
  readonly bufferBytes: number;
  private readonly maxStreamsPerSession: number;

  constructor(private readonly options: PushHubOptions) {
    if (!Number.isInteger(options.bufferSize) || options.bufferSize < 1) {
      throw new RangeError('PushHub bufferSize must be a positive integer');
    }
    this.bufferBytes = options.bufferBytes ?? DEFAULT_PUSH_STREAM_BUFFER_BYTES;
    this.maxStreamsPerSession = options.maxStreamsPerSession ?? DEFAULT_PUSH_MAX_STREAMS_PER_SESSION;
    if (!Number.isInteger(this.bufferBytes) || this.bufferBytes < 0) throw new RangeError('PushHub bufferBytes must be an integer >= 0');
    if (!Number.isInteger(this.maxStreamsPerSession) || this.maxStreamsPerSession < 1) {
      throw new RangeError('PushHub maxStreamsPerSession must be a positive integer');
    }
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = options.logger ?? noopLogger;
  }

  /** Open streams. */
  get size(): number {
    let n = 0;
    for (const set of this.byUser.values()) n += set.size;
    return n;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Open streams of one session. */
  sessionStreams(deviceSessionId: string): number {
    return this.bySession.get(deviceSessionId)?.size ?? 0;
  }

  /**
   * Registers a held stream (see `PushStream.start`). Throws `UNAVAILABLE`
   * `gateway is shutting down` once the hub is closed. When the session already has
   * `maxStreamsPerSession` streams, its oldest one is closed first (`RESOURCE_EXHAUSTED`
   * `push stream replaced by a newer stream`, reason `replaced`).
   */
  register(options: RegisterOptions): PushStream {
    if (this.closing !== undefined) throw GatewayError.shuttingDown();
    const existing = this.bySession.get(options.deviceSessionId);
    while (existing !== undefined && existing.size >= this.maxStreamsPerSession) {
      // A Set iterates in insertion order: the first one is the oldest.
      const oldest = existing.values().next().value as PushStream;
      this.detach(oldest, 'replaced', GatewayError.replaced(), true);
    }
    const feed = this.options.feed;
    const following = feed === undefined ? RESOLVED : feed.follow(options.userId);
    // Observed here so a stream closed before its caller awaits it leaves no unhandled rejection.
    following.catch(() => undefined);
    const stream = new PushStream(this, options.userId, options.deviceSessionId, options.sink, this.options.bufferSize, this.bufferBytes, following);
    addTo(this.byUser, options.userId, stream);
    addTo(this.bySession, options.deviceSessionId, stream);
    this.metrics.pushStreamsActive.add(1);
    return stream;
  }

  /** Device sessions of the open streams of `userId`. */
  userSessions(userId: string): string[] {
    const set = this.byUser.get(userId);
    if (set === undefined) return [];
    return [...new Set([...set].map((s) => s.deviceSessionId))];
  }

  /** True when `publish` of an event for this user (and session, when non-empty) would reach a stream. */
  hasTargets(userId: string, deviceSessionId: string): boolean {
    const set = deviceSessionId !== '' ? this.bySession.get(deviceSessionId) : this.byUser.get(userId);
    if (set === undefined) return false;
    if (deviceSessionId === '') return true;
    for (const stream of set) if (stream.userId === userId) return true;
    return false;
  }

  /**
   * Queues `event` on every stream it targets: the streams of `event.deviceSessionId` when
   * set (and only if they belong to `event.userId`), otherwise every stream of the user.
   * Returns how many streams it targeted.
   */
  publish(event: GatewayEvent): number {
    let targets: Set<PushStream> | undefined;
    if (event.deviceSessionId !== '') {
      targets = this.bySession.get(event.deviceSessionId);
    } else {
      targets = this.byUser.get(event.userId);
    }
    if (targets === undefined) return 0;
    let n = 0;
    // Copy: delivery may close (overflow) and so mutate the set.
    for (const stream of [...targets]) {
      if (stream.userId !== event.userId) continue;
      stream.enqueue(event);
      n += 1;
    }
    this.recordDelivered();
    return n;
  }

  /**
   * A failover lost client events after `after` (SPEC §5.6; `undefined`: the process cannot
   * tell from where). Picks the open streams that were handed an event after `after` or whose
   * user is in `userIds` (every open stream when `after` is undefined), stops them skipping
   * live events after `after` as already replayed (those ids may now name new events), and
   * returns their device sessions with their user, each once, for the caller to notify.
   */
  lostAfter(after: string | undefined, userIds: ReadonlySet<string>): Array<{ readonly userId: string; readonly deviceSessionId: string }> {
    const sessions = new Map<string, string>();
    for (const [userId, set] of this.byUser) {
      const wholeUser = after === undefined || userIds.has(userId);
      for (const stream of set) {
        if (!wholeUser && !stream.handedAfter(after)) continue;
        stream.forgetAfter(after);
        sessions.set(stream.deviceSessionId, userId);
      }
    }
    return [...sessions].map(([deviceSessionId, userId]) => ({ userId, deviceSessionId }));
  }

  /** Closes every stream of `deviceSessionId` (default: `FAILED_PRECONDITION` revoked). */
  closeSession(deviceSessionId: string, error: GatewayError = GatewayError.revoked()): number {
    const set = this.bySession.get(deviceSessionId);
    if (set === undefined) return 0;
    const streams = [...set];
    for (const stream of streams) this.detach(stream, CLOSE_REASON[error.code], error, true);
    if (streams.length > 0) {
      this.logger.info('push streams closed for session', { device_session_id: deviceSessionId, streams: streams.length, reason: error.message });
    }
    return streams.length;
  }

  /** Closes every stream and refuses new ones (default: `UNAVAILABLE` shutting down). */
  close(error: GatewayError = GatewayError.shuttingDown()): number {
    if (this.closing === undefined) this.closing = error;
    const streams: PushStream[] = [];
    for (const set of this.byUser.values()) streams.push(...set);
    for (const stream of streams) this.detach(stream, CLOSE_REASON[error.code], error, true);
    return streams.length;
  }

  /** `await using hub = new PushHub(…)`: {@link PushHub.close} (`UNAVAILABLE` shutting down) at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** @internal Counts one event handed to a transport; see {@link PushHub.recordDelivered}. */
  countDelivered(): void {
    this.deliveredNotRecorded += 1;
  }

  /**
   * @internal Adds the deliveries counted since the last call to
   * `gateway_push_events_delivered_total` in one `add`: at the end of each publish and each
   * flush of a stream's queue, instead of one metric record per delivery (a record costs about
   * as much as the rest of a delivery in the hub).
   */
  recordDelivered(): void {
    if (this.deliveredNotRecorded === 0) return;
    this.metrics.pushEventsDelivered.add(this.deliveredNotRecorded);
    this.deliveredNotRecorded = 0;
  }

  /** @internal */
  detach(stream: PushStream, reason: StreamCloseReason, error: GatewayError | undefined, notify: boolean): void {
    if (!stream.markClosed(error, notify)) return;
    removeFrom(this.byUser, stream.userId, stream);
    removeFrom(this.bySession, stream.deviceSessionId, stream);
    this.options.feed?.unfollow(stream.userId);
    this.metrics.pushStreamsActive.add(-1);
    this.metrics.pushStreamsClosed.add(1, { reason });
    if (reason === 'overflow') {
      this.logger.warn('push stream overflowed', {
        user_id: stream.userId,
        device_session_id: stream.deviceSessionId,
        buffer: this.options.bufferSize,
        buffer_bytes: this.bufferBytes,
      });
    }
  }
}

function addTo(index: Map<string, Set<PushStream>>, key: string, stream: PushStream): void {
  let set = index.get(key);
  if (set === undefined) {
    set = new Set();
    index.set(key, set);
  }
  set.add(stream);
}

function removeFrom(index: Map<string, Set<PushStream>>, key: string, stream: PushStream): void {
  const set = index.get(key);
  if (set === undefined) return;
  set.delete(stream);
  if (set.size === 0) index.delete(key);
}

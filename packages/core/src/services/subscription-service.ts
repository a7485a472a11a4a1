import { GatewayEventTypes, type GatewayEvent, type SubscribeRequest } from '../domain.js';
import { GatewayError, GatewayMessages } from '../errors.js';
import { DEFAULT_PUSH_MAX_EVENT_BYTES, parseClientEvent } from '../handlers/client-event.js';
import { signEvent } from '../handlers/client-events-handler.js';
import type { GatewayMetrics, ResumeIncompleteReason } from '../observability/metrics.js';
import type { Clock } from '../ports/clock.port.js';
import type { EventHistory } from '../ports/event-history.port.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { ReplayStore } from '../ports/replay-store.port.js';
import { signWith, type ResponseSigner } from '../ports/response-signer.port.js';
import type { PushHub, PushSink, PushStream } from '../push/push-hub.js';
import type { SessionCache } from '../session/session-cache.js';
import { eventBytes } from '../signing/canonical.js';
import { verifySubscribeRequest, verifySubscribeRequestAsync } from '../signing/verifier.js';
import type { RateLimits } from '../rate-limit/rate-limits.js';
import { compareStreamIds, validateSubscribeRequest } from '../validation.js';
import { describe } from './command-service.js';
import { checkFreshness, pipelineDeps, recheckNotRevoked, reserveRequest, resolveActiveSession, type PipelineDeps } from './pipeline.js';
import { encodeServerTime } from './server-time.js';

export interface SubscriptionServiceOptions {
  readonly sessions: SessionCache;
  readonly replay: ReplayStore;
  readonly hub: PushHub;
  readonly signer: ResponseSigner;
  /** Client-events history for `resume_after_event_id`; without it a resume is always incomplete. */
  readonly history?: EventHistory;
  readonly freshnessWindowMs?: number;
  /** `GATEWAY_PUSH_RESUME_MAX_EVENTS`: events replayed at most (default 1000). */
  readonly resumeMaxEvents?: number;
  /** `GATEWAY_PUSH_RESUME_MAX_SCAN`: history entries read at most (default 10000). */
  readonly resumeMaxScan?: number;
  /**
   * `GATEWAY_PUSH_RESUME_MAX_BYTES`: payload bytes replayed at most (default: the hub's
   * per-stream byte bound, {@link PushHub.bufferBytes}). Replayed events are handed to
   * `PushStream.start` outside the live buffer's bounds, so without it one resume could queue
   * `resumeMaxEvents` × `maxEventBytes`; with it a resuming stream holds at most this plus the
   * live buffer.
   */
  readonly resumeMaxBytes?: number;
  /**
   * `GATEWAY_PUSH_MAX_EVENT_BYTES`: history entries with a larger decoded payload are skipped
   * on resume, as the live consumer drops them (default 1 MiB).
   */
  readonly maxEventBytes?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: GatewayMetrics;
  /** Rate limits (`session_streams` rules, SPEC §4 step 7), shared with the command service. Default: none. */
  readonly rateLimits?: RateLimits;
  /**
   * Verify the subscribe request and sign the bootstrap event in libuv's threadpool (see
   * `CommandServiceOptions.asyncCrypto`). Default true.
   */
  readonly asyncCrypto?: boolean;
  /**
   * Subscribe requests checked at the same time (session lookup, signature, replay
   * reservation); more wait their turn before any check starts. Under a storm of thousands of
   * subscribes this keeps each admitted request's Redis commands from queueing behind all the
   * others (which made them hit the command timeout). Default 256.
   */
  readonly maxConcurrentChecks?: number;
}

export const DEFAULT_MAX_CONCURRENT_CHECKS = 256;

export const DEFAULT_RESUME_MAX_EVENTS = 1000;
export const DEFAULT_RESUME_MAX_SCAN = 10_000;
const HISTORY_PAGE = 500;

type IncompleteReason = ResumeIncompleteReason;

/**
 * SubscribeEvents: the checks of SPEC §4 (no route step), then a push stream registered in
 * the hub, the signed `gateway.server_time` bootstrap first, replayed history when resuming,
 * then the live feed.
 */
export class SubscriptionService {
  private readonly deps: PipelineDeps;
  private readonly logger: Logger;
  private readonly asyncCrypto: boolean;
  private readonly maxChecks: number;
  private checking = 0;
  private readonly waiting: Array<() => void> = [];
  private waitingHead = 0;
  private shuttingDown = false;

  constructor(private readonly options: SubscriptionServiceOptions) {
    this.asyncCrypto = options.asyncCrypto ?? true;
    this.maxChecks = Math.max(1, options.maxConcurrentChecks ?? DEFAULT_MAX_CONCURRENT_CHECKS);
    this.deps = pipelineDeps(options);
    this.logger = options.logger ?? noopLogger;
  }

  /** From now on new subscriptions fail `UNAVAILABLE` `gateway is shutting down`. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  /**
   * Runs the checks and opens the stream; events flow into `sink`. Rejects with a
   * `GatewayError` when a check fails (nothing was registered then).
   */
  async subscribe(request: SubscribeRequest, sink: PushSink): Promise<PushStream> {
    if (this.shuttingDown || this.options.hub.closed) throw GatewayError.shuttingDown();
    validateSubscribeRequest(request);
    await this.admit();
    try {
      return await this.checkAndOpen(request, sink);
    } finally {
      this.leave();
    }
  }

  /** Waits for one of the `maxConcurrentChecks` slots. */
  private admit(): Promise<void> {
    if (this.checking < this.maxChecks) {
      this.checking += 1;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot to the next waiting request (FIFO), or frees it. */
  private leave(): void {
    if (this.waitingHead < this.waiting.length) {
      const next = this.waiting[this.waitingHead] as () => void;
      this.waitingHead += 1;
      if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
        this.waiting.splice(0, this.waitingHead);
        this.waitingHead = 0;
      }
      next();
      return;
    }
    this.checking -= 1;
  }

  private async checkAndOpen(request: SubscribeRequest, sink: PushSink): Promise<PushStream> {
    // Checked again after waiting for a slot: shutdown may have begun meanwhile.
    if (this.shuttingDown || this.options.hub.closed) throw GatewayError.shuttingDown();
    // Freshness is checked once admitted, so time spent waiting counts against the window.
    checkFreshness(this.deps, request.timestampMs);
    const { session, publicKey } = await resolveActiveSession(this.deps, request.deviceSessionId);
    const limits = this.options.rateLimits;
    if (limits !== undefined) {
      // A session known to be over its stream limit is refused before its signature is checked.
      const subject = { deviceSessionId: request.deviceSessionId, userId: session.userId };
      limits.refuseKnown(limits.streamBuckets(subject), subject);
    }
    let bootstrap: GatewayEvent;
    if (this.asyncCrypto) {
      if (!(await verifySubscribeRequestAsync(publicKey, request))) throw GatewayError.unauthenticated(GatewayMessages.invalidSignature);
      const limited = this.limitedReservation(request, session.userId);
      if (limited !== undefined) {
        // Admitted first: a refused open costs no bootstrap signature.
        await limited;
        bootstrap = await this.gatewayEventAsync(GatewayEventTypes.serverTime, session.userId, session.deviceSessionId, (now) => encodeServerTime(now, request.requestId));
      } else {
        // The bootstrap is signed while the reservation is in flight (both off the event loop).
        const [, signed] = await Promise.all([
          this.reserve(request, session.userId),
          this.gatewayEventAsync(GatewayEventTypes.serverTime, session.userId, session.deviceSessionId, (now) => encodeServerTime(now, request.requestId)),
        ]);
        bootstrap = signed;
      }
    } else {
      if (!verifySubscribeRequest(publicKey, request)) throw GatewayError.unauthenticated(GatewayMessages.invalidSignature);
      await this.reserve(request, session.userId);
      bootstrap = this.gatewayEvent(GatewayEventTypes.serverTime, session.userId, session.deviceSessionId, (now) =>
        encodeServerTime(now, request.requestId),
      );
    }
    // No await between this check and register: a revoke is either seen here or closes the stream.
    recheckNotRevoked(this.deps, request.deviceSessionId);
    const stream = this.options.hub.register({ userId: session.userId, deviceSessionId: session.deviceSessionId, sink });
    try {
      await stream.following;
    } catch (error) {
      // Fail closed: a stream whose user the feed does not follow would receive nothing.
      this.logger.warn('push feed could not follow the user', { device_session_id: session.deviceSessionId, error: describe(error) });
      this.options.hub.detach(stream, 'error', undefined, false);
      throw GatewayError.unavailable(GatewayMessages.pushFeedUnavailable, error);
    }
    if (stream.closed) return stream;

    if (request.resumeAfterEventId === '') {
      stream.start([bootstrap]);
      return stream;
    }
    try {
      await this.resume(stream, bootstrap, request.resumeAfterEventId);
    } catch (error) {
      this.logger.warn('push resume failed', { device_session_id: session.deviceSessionId, error: describe(error) });
      if (!stream.closed) stream.start([bootstrap, this.incomplete(stream)]);
      this.deps.metrics.pushResumeIncomplete.add(1, { reason: 'read_error' });
    }
    return stream;
  }

  /** Steps 7–8 when `session_streams` rules apply (undefined otherwise). */
  private limitedReservation(request: SubscribeRequest, userId: string): Promise<unknown> | undefined {
    const limits = this.options.rateLimits;
    if (limits === undefined) return undefined;
    const subject = { deviceSessionId: request.deviceSessionId, userId };
    const buckets = limits.streamBuckets(subject);
    return buckets.length === 0 ? undefined : limits.admit(this.deps, buckets, subject, request.requestId);
  }

  /** Steps 7–8 (the limits may hold the reservation even when no stream rule applies). */
  private reserve(request: SubscribeRequest, userId: string): Promise<unknown> {
    const limits = this.options.rateLimits;
    if (limits === undefined) return reserveRequest(this.deps, request.deviceSessionId, request.requestId);
    const subject = { deviceSessionId: request.deviceSessionId, userId };
    return limits.admit(this.deps, limits.streamBuckets(subject), subject, request.requestId);
  }

  private async resume(stream: PushStream, bootstrap: GatewayEvent, afterId: string): Promise<void> {
    const maxEvents = this.options.resumeMaxEvents ?? DEFAULT_RESUME_MAX_EVENTS;
    const maxScan = this.options.resumeMaxScan ?? DEFAULT_RESUME_MAX_SCAN;
    const maxBytes = this.options.resumeMaxBytes ?? this.options.hub.bufferBytes;
    this.deps.metrics.pushResumes.add(1);
    const replayed: GatewayEvent[] = [];
    let replayedBytes = 0;
    let incomplete: IncompleteReason | undefined;
    let cursor = afterId;
    let scanned = 0;
    // Set when `maxEvents` or `maxBytes` is reached: stop reading even if `incomplete` already says
    // 'truncated' (otherwise the loop would re-read the same page until maxScan).
    let full = false;
    const history = this.options.history;
    const limits = { maxEventBytes: this.options.maxEventBytes ?? DEFAULT_PUSH_MAX_EVENT_BYTES };
    if (history === undefined) {
      incomplete = 'truncated';
    } else {
      for (;;) {
        const page = await history.readAfter(cursor, Math.min(HISTORY_PAGE, maxScan - scanned), stream.userId);
        if (stream.closed) return;
        // The client's id only: later pages continue after ids just read from this history.
        if (page.diverged === true && cursor === afterId) incomplete ??= 'diverged';
        // Every page: a trim racing the replay can cut entries between two pages too.
        if (page.truncated) incomplete ??= 'truncated';
        for (const entry of page.entries) {
          scanned += 1;
          // Never throws: an entry the live consumer dropped as malformed is skipped alone here.
          const parsed = parseClientEvent(entry, limits);
          if (parsed.ok && targets(stream, parsed.event.userId, parsed.event.deviceSessionId)) {
            if (replayed.length >= maxEvents) {
              incomplete ??= 'max_events';
              full = true;
              break;
            }
            const size = parsed.event.payload.length;
            if (replayedBytes + size > maxBytes) {
              // Like max_events: this event and the rest are not replayed; the cursor stays before it.
              incomplete ??= 'max_bytes';
              full = true;
              break;
            }
            replayedBytes += size;
            replayed.push(signEvent(this.options.signer, parsed.event));
          }
          cursor = entry.id;
        }
        if (full) break;
        // Caught up with the live feed: the stream (registered before the read) gets the rest live.
        if (page.entries.length === 0 || page.caughtUp === true) break;
        if (scanned >= maxScan) {
          // Only incomplete if the stream still holds more after the cursor.
          const more = await history.readAfter(cursor, 1, stream.userId);
          if (more.entries.length > 0) incomplete ??= 'max_scan';
          break;
        }
      }
    }
    if (stream.closed) return;
    // Live events dropped while held (a burst longer than the buffer) that history did not cover.
    if (stream.lostWhileHeld(cursor)) incomplete ??= 'live_overflow';
    // A bound stopped the replay: the rest of the missed events is not sent (SPEC §8.3), also not
    // by a live consumer that has not reached them yet: the live feed starts after the newest
    // entry the history holds now.
    let skipThrough = cursor;
    if (history?.newestId !== undefined && (incomplete === 'max_events' || incomplete === 'max_bytes' || incomplete === 'max_scan')) {
      // Best effort: without the answer the live feed starts after the cursor, as before.
      const newest = await history.newestId(stream.userId).catch((error: unknown) => {
        this.logger.warn('push resume could not read the history head', { device_session_id: stream.deviceSessionId, error: describe(error) });
        return undefined;
      });
      if (stream.closed) return;
      if (newest !== undefined && compareStreamIds(newest, skipThrough) > 0) skipThrough = newest;
    }
    const first = [bootstrap];
    if (incomplete !== undefined) {
      first.push(this.incomplete(stream));
      this.deps.metrics.pushResumeIncomplete.add(1, { reason: incomplete });
    }
    this.deps.metrics.pushResumeReplayed.add(replayed.length);
    stream.start([...first, ...replayed], { skipThroughEventId: skipThrough });
  }

  private incomplete(stream: PushStream): GatewayEvent {
    return this.gatewayEvent(GatewayEventTypes.resumeIncomplete, stream.userId, stream.deviceSessionId, () => new Uint8Array(0));
  }

  private async gatewayEventAsync(eventType: string, userId: string, deviceSessionId: string, payload: (now: number) => Uint8Array): Promise<GatewayEvent> {
    const timestampMs = this.deps.clock.now();
    const event = { eventId: '', eventType, userId, deviceSessionId, timestampMs, payload: payload(timestampMs) };
    return { ...event, signerKeyId: this.options.signer.keyId, signature: await signWith(this.options.signer, eventBytes(event)) };
  }

  private gatewayEvent(eventType: string, userId: string, deviceSessionId: string, payload: (now: number) => Uint8Array): GatewayEvent {
    const timestampMs = this.deps.clock.now();
    return signEvent(this.options.signer, { eventId: '', eventType, userId, deviceSessionId, timestampMs, payload: payload(timestampMs) });
  }
}

function targets(stream: PushStream, userId: string, deviceSessionId: string): boolean {
  return userId === stream.userId && (deviceSessionId === '' || deviceSessionId === stream.deviceSessionId);
}

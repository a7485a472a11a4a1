import { GatewayEventTypes, type GatewayEvent, type StreamEntry, type UnsignedEvent } from '../domain.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { systemClock, type Clock } from '../ports/clock.port.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import { signWith, type ResponseSigner } from '../ports/response-signer.port.js';
import type { PushHub } from '../push/push-hub.js';
import { eventBytes } from '../signing/canonical.js';
import { DEFAULT_PUSH_MAX_EVENT_BYTES, parseClientEvent, type ClientEventLimits } from './client-event.js';
import type { StreamEntryHandler, StreamHistoryLoss } from './stream-entry-handler.js';

/** Signs an event with the gateway's response signer (SPEC §3). */
export function signEvent(signer: ResponseSigner, event: UnsignedEvent): GatewayEvent {
  return { ...event, signerKeyId: signer.keyId, signature: signer.sign(eventBytes(event)) };
}

export interface ClientEventsHandlerOptions {
  readonly hub: PushHub;
  readonly signer: ResponseSigner;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
  /**
   * In `handleBatch`, a read with at least this many events to deliver has them signed in
   * libuv's threadpool, all at once (`ResponseSigner.signAsync`), then published in stream
   * order; smaller reads are signed inline, where the hand-off would cost more than it frees.
   * Default {@link DEFAULT_ASYNC_SIGN_MIN_BATCH}.
   */
  readonly asyncSignMinBatch?: number;
  /**
   * `GATEWAY_PUSH_MAX_EVENT_BYTES`: a client event whose decoded payload is larger is dropped as
   * malformed. Default {@link DEFAULT_PUSH_MAX_EVENT_BYTES}.
   */
  readonly maxEventBytes?: number;
  /** Timestamps of `gateway.resume_incomplete` events (default the system clock). */
  readonly clock?: Clock;
}

export const DEFAULT_ASYNC_SIGN_MIN_BATCH = 4;

/**
 * Client-events stream entries (SPEC §5.4): parse, validate, sign once, fan out through the
 * hub. Entries nobody is subscribed to are not signed at all.
 *
 * Entries are isolated from each other: one that fails for any reason (malformed, too large,
 * signing failed, a bug) is dropped alone, counted in `gateway_stream_entries_malformed_total`
 * and logged with its id and the reason, and every other entry of the read is delivered in
 * order. Neither `handle` nor `handleBatch` throws or rejects.
 */
const CLIENT_EVENTS = Object.freeze({ stream: 'client_events' as const });

export class ClientEventsHandler implements StreamEntryHandler {
  readonly stream = 'client_events' as const;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly limits: ClientEventLimits;

  constructor(private readonly options: ClientEventsHandlerOptions) {
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = options.logger ?? noopLogger;
    this.limits = { maxEventBytes: options.maxEventBytes ?? DEFAULT_PUSH_MAX_EVENT_BYTES };
  }

  handle(entry: StreamEntry): void {
    this.metrics.streamEntriesConsumed.add(1, CLIENT_EVENTS);
    const event = this.deliverable(entry);
    if (event !== undefined) this.publish(event, () => signEvent(this.options.signer, event));
  }

  /**
   * The entries of one read: the events someone is subscribed to are signed together (in the
   * threadpool when there are enough of them) and published in stream order.
   */
  async handleBatch(entries: readonly StreamEntry[]): Promise<void> {
    // One metric record per read, not per entry.
    if (entries.length > 0) this.metrics.streamEntriesConsumed.add(entries.length, CLIENT_EVENTS);
    const events: UnsignedEvent[] = [];
    for (const entry of entries) {
      const event = this.deliverable(entry);
      if (event !== undefined) events.push(event);
    }
    const { signer } = this.options;
    if (events.length < (this.options.asyncSignMinBatch ?? DEFAULT_ASYNC_SIGN_MIN_BATCH) || signer.signAsync === undefined) {
      for (const event of events) this.publish(event, () => signEvent(signer, event));
      return;
    }
    // `then` turns a synchronous throw of one signing into that event's rejection alone. The key
    // id is read in the same step the signing starts, so a key rotated meanwhile (SIGHUP) never
    // labels a signature made with the old key.
    const signatures = await Promise.allSettled(
      events.map((event) =>
        Promise.resolve().then(() => {
          const signerKeyId = signer.keyId;
          return signWith(signer, eventBytes(event)).then((signature) => ({ signerKeyId, signature }));
        }),
      ),
    );
    signatures.forEach((outcome, i) => {
      const event = events[i] as UnsignedEvent;
      if (outcome.status === 'fulfilled') {
        this.publish(event, () => ({ ...event, ...outcome.value }));
      } else {
        this.signingFailed(event, outcome.reason);
      }
    });
  }

  /** Signs (via `signed`) and publishes one event; a failure drops this event alone. */
  private publish(event: UnsignedEvent, signed: () => GatewayEvent): void {
    let gatewayEvent: GatewayEvent;
    try {
      gatewayEvent = signed();
    } catch (error) {
      this.signingFailed(event, error);
      return;
    }
    try {
      this.options.hub.publish(gatewayEvent);
    } catch (error) {
      this.dropped(event.eventId, `publish failed (${describeError(error)})`);
    }
  }

  private signingFailed(event: UnsignedEvent, error: unknown): void {
    this.metrics.streamEntriesMalformed.add(1, { stream: this.stream });
    this.logger.error('event signing failed; event dropped', { entry_id: event.eventId, error: String(error) });
  }

  /** Counts and logs an entry dropped alone (never its payload). */
  private dropped(entryId: string, reason: string): void {
    this.metrics.streamEntriesMalformed.add(1, { stream: this.stream });
    this.logger.warn('malformed stream entry dropped', { stream: this.stream, entry_id: entryId, reason });
  }

  /**
   * The feed lost continuity for `userId` (routed fan-out: its history was reset, so events may
   * be missing): every open stream of the user gets a signed `gateway.resume_incomplete`
   * (`event_id` empty, the stream's own session, empty payload), as after a truncated resume.
   * Returns how many sessions were told.
   */
  discontinuity(userId: string): number {
    const sessions = this.options.hub.userSessions(userId);
    const timestampMs = (this.options.clock ?? systemClock).now();
    for (const deviceSessionId of sessions) {
      const event = { eventId: '', eventType: GatewayEventTypes.resumeIncomplete, userId, deviceSessionId, timestampMs, payload: new Uint8Array(0) };
      this.options.hub.publish(signEvent(this.options.signer, event));
    }
    return sessions.length;
  }

  /**
   * A failover lost client events (stream fan-out, SPEC §5.6): every open stream that was handed
   * an event after `loss.after`, or whose user had a lost entry, gets a signed
   * `gateway.resume_incomplete` (as {@link ClientEventsHandler.discontinuity}); when `after` is
   * unknown, every open stream does. Counted in `gateway_push_loss_notices_total` and logged.
   */
  onHistoryLost(loss: StreamHistoryLoss): void {
    const sessions = this.options.hub.lostAfter(loss.after, new Set(loss.userIds));
    const timestampMs = (this.options.clock ?? systemClock).now();
    let told = 0;
    for (const { userId, deviceSessionId } of sessions) {
      const event = { eventId: '', eventType: GatewayEventTypes.resumeIncomplete, userId, deviceSessionId, timestampMs, payload: new Uint8Array(0) };
      try {
        this.options.hub.publish(signEvent(this.options.signer, event));
        told += 1;
      } catch (error) {
        this.logger.error('loss notice failed', { device_session_id: deviceSessionId, error: describeError(error) });
      }
    }
    if (told > 0) this.metrics.pushLossNotices.add(told, { reason: 'history_diverged' });
    this.logger.warn('push streams told of lost events', {
      lost_after: loss.after ?? '(unknown)',
      lost_up_to: loss.upTo,
      users_with_lost_entries: loss.userIds.length,
      sessions_told: told,
    });
  }

  /** The parsed event when the entry is well-formed and someone would receive it. */
  private deliverable(entry: StreamEntry): UnsignedEvent | undefined {
    const parsed = parseClientEvent(entry, this.limits);
    if (!parsed.ok) {
      this.dropped(String(entry.id), parsed.reason);
      return undefined;
    }
    if (!this.options.hub.hasTargets(parsed.event.userId, parsed.event.deviceSessionId)) return undefined;
    return parsed.event;
  }
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

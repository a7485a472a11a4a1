import type { GatewayEvent, StreamEntry, UnsignedEvent } from '../domain.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import { signWith, type ResponseSigner } from '../ports/response-signer.port.js';
import type { PushHub } from '../push/push-hub.js';
import { eventBytes } from '../signing/canonical.js';
import { parseClientEvent } from './client-event.js';
import type { StreamEntryHandler } from './stream-entry-handler.js';

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
}

export const DEFAULT_ASYNC_SIGN_MIN_BATCH = 4;

/**
 * Client-events stream entries (SPEC §5.4): parse, validate, sign once, fan out through the
 * hub. Entries nobody is subscribed to are not signed at all.
 */
export class ClientEventsHandler implements StreamEntryHandler {
  readonly stream = 'client_events' as const;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;

  constructor(private readonly options: ClientEventsHandlerOptions) {
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = options.logger ?? noopLogger;
  }

  handle(entry: StreamEntry): void {
    const event = this.deliverable(entry);
    if (event !== undefined) this.options.hub.publish(signEvent(this.options.signer, event));
  }

  /**
   * The entries of one read: the events someone is subscribed to are signed together (in the
   * threadpool when there are enough of them) and published in stream order.
   */
  async handleBatch(entries: readonly StreamEntry[]): Promise<void> {
    const events: UnsignedEvent[] = [];
    for (const entry of entries) {
      const event = this.deliverable(entry);
      if (event !== undefined) events.push(event);
    }
    const { hub, signer } = this.options;
    if (events.length < (this.options.asyncSignMinBatch ?? DEFAULT_ASYNC_SIGN_MIN_BATCH) || signer.signAsync === undefined) {
      for (const event of events) hub.publish(signEvent(signer, event));
      return;
    }
    const signatures = await Promise.allSettled(events.map((event) => signWith(signer, eventBytes(event))));
    signatures.forEach((outcome, i) => {
      const event = events[i] as UnsignedEvent;
      if (outcome.status === 'fulfilled') {
        hub.publish({ ...event, signerKeyId: signer.keyId, signature: outcome.value });
      } else {
        this.logger.error('event signing failed; event dropped', { entry_id: event.eventId, error: String(outcome.reason) });
      }
    });
  }

  /** Counts the entry; the parsed event when it is well-formed and someone would receive it. */
  private deliverable(entry: StreamEntry): UnsignedEvent | undefined {
    this.metrics.streamEntriesConsumed.add(1, { stream: this.stream });
    const parsed = parseClientEvent(entry);
    if (!parsed.ok) {
      this.metrics.streamEntriesMalformed.add(1, { stream: this.stream });
      this.logger.warn('malformed stream entry dropped', { stream: this.stream, entry_id: entry.id, reason: parsed.reason });
      return undefined;
    }
    if (!this.options.hub.hasTargets(parsed.event.userId, parsed.event.deviceSessionId)) return undefined;
    return parsed.event;
  }
}

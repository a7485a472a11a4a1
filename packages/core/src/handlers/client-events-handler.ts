import type { GatewayEvent, StreamEntry, UnsignedEvent } from '../domain.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { ResponseSigner } from '../ports/response-signer.port.js';
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
}

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
    this.metrics.streamEntriesConsumed.add(1, { stream: this.stream });
    const parsed = parseClientEvent(entry);
    if (!parsed.ok) {
      this.metrics.streamEntriesMalformed.add(1, { stream: this.stream });
      this.logger.warn('malformed stream entry dropped', { stream: this.stream, entry_id: entry.id, reason: parsed.reason });
      return;
    }
    const { hub } = this.options;
    if (!hub.hasTargets(parsed.event.userId, parsed.event.deviceSessionId)) return;
    hub.publish(signEvent(this.options.signer, parsed.event));
  }
}

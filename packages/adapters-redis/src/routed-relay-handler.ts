import { GatewayMetrics, noopLogger, parseClientEvent, type Logger, type StreamEntry, type StreamEntryHandler } from '@edge-gateway/core';
import { describeRedisError } from './redis-client.js';
import type { RedisRoutedPublisher } from './redis-routed-publisher.js';

/**
 * Migration relay (SPEC §9.4): entries XADDed to the legacy client-events stream are published
 * into the routed path, so publishers can move to routed publishing one at a time. Entries the
 * gateway would drop are dropped here the same way (counted, logged with the reason); the
 * others are published in stream order. A relayed event gets a new id (its id in the user's
 * history), which is the id clients see.
 */
export class RoutedRelayHandler implements StreamEntryHandler {
  readonly stream = 'client_events' as const;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly maxEventBytes: number | undefined;

  constructor(
    private readonly publisher: Pick<RedisRoutedPublisher, 'publish'>,
    options: {
      metrics?: GatewayMetrics;
      logger?: Logger;
      /** `GATEWAY_PUSH_MAX_EVENT_BYTES`: larger entries are dropped as the gateway drops them. */
      maxEventBytes?: number;
    } = {},
  ) {
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = options.logger ?? noopLogger;
    this.maxEventBytes = options.maxEventBytes;
  }

  handle(entry: StreamEntry): void {
    void this.handleBatch([entry]);
  }

  async handleBatch(entries: readonly StreamEntry[]): Promise<void> {
    for (const entry of entries) {
      this.metrics.streamEntriesConsumed.add(1, { stream: this.stream });
      const parsed = parseClientEvent(entry, { maxEventBytes: this.maxEventBytes });
      if (!parsed.ok) {
        this.metrics.streamEntriesMalformed.add(1, { stream: this.stream });
        this.logger.warn('malformed stream entry dropped', { stream: this.stream, entry_id: entry.id, reason: parsed.reason });
        continue;
      }
      const { userId, deviceSessionId, eventType, payload } = parsed.event;
      try {
        await this.publisher.publish({ userId, deviceSessionId, eventType, payload });
      } catch (err) {
        // One entry that cannot be published must not stop the others.
        this.logger.error('relay publish failed; entry dropped', { entry_id: entry.id, error: describeRedisError(err) });
      }
    }
  }
}

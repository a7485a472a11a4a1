import type { StreamEntry } from '../domain.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { PushHub } from '../push/push-hub.js';
import type { SessionCache } from '../session/session-cache.js';
import { parseSessionFields } from '../session/session-fields.js';
import type { StreamEntryHandler } from './stream-entry-handler.js';

export interface SessionEventsHandlerOptions {
  readonly cache: SessionCache;
  readonly hub: PushHub;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
}

/**
 * Session-events stream entries (SPEC §5.3): each well-formed snapshot replaces the cached
 * session (last wins); a revoked one closes that session's streams. The cache is updated
 * before the streams close, in the same tick, so no request can pass in between.
 */
export class SessionEventsHandler implements StreamEntryHandler {
  readonly stream = 'session_events' as const;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;

  constructor(private readonly options: SessionEventsHandlerOptions) {
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = options.logger ?? noopLogger;
  }

  handle(entry: StreamEntry): void {
    this.metrics.streamEntriesConsumed.add(1, { stream: this.stream });
    const parsed = parseSessionFields(entry.fields);
    if (!parsed.ok) {
      this.metrics.streamEntriesMalformed.add(1, { stream: this.stream });
      this.logger.warn('malformed stream entry dropped', { stream: this.stream, entry_id: entry.id, reason: parsed.reason });
      return;
    }
    const { session } = parsed;
    this.options.cache.apply(session);
    if (session.status === 'revoked') {
      const closed = this.options.hub.closeSession(session.deviceSessionId);
      this.logger.info('device session revoked', { device_session_id: session.deviceSessionId, user_id: session.userId, entry_id: entry.id, streams_closed: closed });
    }
  }

  /** Snapshots may have been missed while disconnected: forget everything cached. */
  onReconnect(): void {
    this.options.cache.clear();
    this.logger.info('session cache cleared after session-events reconnect', { stream: this.stream });
  }
}

import type { StreamEntry } from '../domain.js';
import { clientField } from '../observability/log-safe.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { PushHub } from '../push/push-hub.js';
import type { SessionCache } from '../session/session-cache.js';
import { parseRevocation, parseSessionFields } from '../session/session-fields.js';
import { isValidUserId } from '../validation.js';
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

  /**
   * Never throws: an entry that fails for any reason is dropped alone (counted, logged with its
   * id and reason, never its fields).
   */
  handle(entry: StreamEntry): void {
    this.metrics.streamEntriesConsumed.add(1, { stream: this.stream });
    try {
      this.apply(entry);
    } catch (error) {
      this.malformed(entry, `entry could not be processed (${error instanceof Error ? error.name : typeof error})`);
    }
  }

  private apply(entry: StreamEntry): void {
    const parsed = parseSessionFields(entry.fields);
    if (!parsed.ok) {
      const revocation = parseRevocation(entry.fields);
      if (revocation === undefined) {
        this.malformed(entry, parsed.reason);
        return;
      }
      // Fail closed: a revoke must not be lost because another field is broken. Still
      // counted and logged as malformed, so the publisher gets fixed.
      this.metrics.streamEntriesMalformed.add(1, { stream: this.stream });
      const userId = entry.fields['user_id'];
      this.logger.warn('incomplete revoked snapshot applied', {
        stream: this.stream,
        entry_id: String(entry.id),
        device_session_id: revocation.deviceSessionId,
        // An invalid user_id only as its bounded preview.
        ...(userId === undefined || userId === '' ? {} : clientField('user_id', userId, isValidUserId(userId))),
        reason: parsed.reason,
      });
      this.options.cache.revoke(revocation.deviceSessionId, revocation.userId);
      this.revoked(revocation.deviceSessionId, entry);
      return;
    }
    const { session } = parsed;
    this.options.cache.apply(session);
    if (session.status === 'revoked') this.revoked(session.deviceSessionId, entry, session.userId);
  }

  private revoked(deviceSessionId: string, entry: StreamEntry, userId?: string): void {
    const closed = this.options.hub.closeSession(deviceSessionId);
    this.logger.info('device session revoked', {
      device_session_id: deviceSessionId,
      ...(userId === undefined ? {} : { user_id: userId }),
      entry_id: entry.id,
      streams_closed: closed,
    });
  }

  private malformed(entry: StreamEntry, reason: string): void {
    this.metrics.streamEntriesMalformed.add(1, { stream: this.stream });
    this.logger.warn('malformed stream entry dropped', { stream: this.stream, entry_id: String(entry.id), reason });
  }

  /** Snapshots may have been missed while disconnected: forget everything cached. */
  onReconnect(): void {
    this.options.cache.clear();
    this.logger.info('session cache cleared after session-events reconnect', { stream: this.stream });
  }
}

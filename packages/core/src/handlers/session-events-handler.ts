import type { StreamEntry } from '../domain.js';
import { clientField } from '../observability/log-safe.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { systemClock, type Clock } from '../ports/clock.port.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { RevocationStore } from '../ports/revocation-store.port.js';
import type { PushHub } from '../push/push-hub.js';
import type { RevocationMemory } from '../session/revocation-memory.js';
import type { RevocationReasserter } from '../session/revocation-reasserter.js';
import type { SessionCache } from '../session/session-cache.js';
import { parseRevocation, parseSessionFields } from '../session/session-fields.js';
import { isValidUserId } from '../validation.js';
import type { StreamEntryHandler, StreamReconnect } from './stream-entry-handler.js';

export interface SessionEventsHandlerOptions {
  readonly cache: SessionCache;
  readonly hub: PushHub;
  /**
   * The cache's revocation memory and the store that writes revocations back (SPEC §5.3): the
   * record's expiry is asked when a revocation is seen, and after a diverged history or a
   * master change the `reasserter` writes back what the master lacks. Absent: revocations are
   * still remembered by the cache (if it has a memory), never written back.
   */
  readonly revocations?: {
    readonly memory: RevocationMemory;
    readonly store: RevocationStore;
    readonly reasserter: RevocationReasserter;
  };
  readonly clock?: Clock;
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
  private readonly clock: Clock;

  constructor(private readonly options: SessionEventsHandlerOptions) {
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = options.logger ?? noopLogger;
    this.clock = options.clock ?? systemClock;
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
    this.learnRecordExpiry(deviceSessionId);
  }

  /** Asks the store how long the record lives, so the revocation is remembered at least as long. */
  private learnRecordExpiry(deviceSessionId: string): void {
    const revocations = this.options.revocations;
    if (revocations === undefined) return;
    revocations.store.recordTtl(deviceSessionId).then(
      (ttlMs) => revocations.memory.recordExpiry(deviceSessionId, ttlMs === undefined ? undefined : this.clock.now() + ttlMs),
      (error: unknown) =>
        // Unknown expiry: the retention (twice the freshness window) still holds.
        this.logger.debug('session record expiry unknown', { device_session_id: deviceSessionId, error: error instanceof Error ? error.message : String(error) }),
    );
  }

  /**
   * Checks every remembered revocation on the store and writes back what it lacks (SPEC §5.3);
   * returns at once. Called after a diverged history or a master change (and by an app that
   * learns of a master change another way, e.g. a Redis Cluster failover).
   */
  reassertRevocations(reason: string): void {
    this.options.revocations?.reasserter.trigger(reason);
  }

  private malformed(entry: StreamEntry, reason: string): void {
    this.metrics.streamEntriesMalformed.add(1, { stream: this.stream });
    this.logger.warn('malformed stream entry dropped', { stream: this.stream, entry_id: String(entry.id), reason });
  }

  /**
   * Snapshots may have been missed while disconnected: forget everything cached but the
   * remembered revocations. After a diverged history or a master change, they are re-asserted.
   */
  onReconnect(reconnect?: StreamReconnect): void {
    this.options.cache.clear();
    this.logger.info('session cache cleared after session-events reconnect', {
      stream: this.stream,
      revocations_kept: this.options.revocations?.memory.size ?? 0,
    });
    if (reconnect?.historyDiverged === true) this.reassertRevocations('session-events history diverged');
    else if (reconnect?.masterChanged === true) this.reassertRevocations('master changed');
  }
}

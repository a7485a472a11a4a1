import {
  GatewayMetrics,
  isStreamId,
  noopLogger,
  type EpochLink,
  type HistoryPosition,
  type Logger,
  type SequencedEvent,
  type UserHistoryReader,
} from '@edge-gateway/core';
import type { RedisCommands } from './redis-commands.js';
import { flatToRecord } from './redis-session-store.js';
import { routedUserKeys } from './routed-keys.js';
import { parseEntries } from './stream-reply.js';

/** Drop reason of a history entry that names another user than the history's (SPEC §9.2). */
export const MISKEYED_ENTRY_REASON = "user_id is not the history's user";

/** Options of {@link RedisUserHistory}. */
export interface RedisUserHistoryOptions {
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
}

/**
 * The per-user histories of routed fan-out (SPEC §9.2) for the core's `UserSequencer`: the
 * meta hash (`HGETALL`) gives the position, the history stream (`XRANGE`) the events.
 *
 * An entry whose `user_id` is not the history's user (written around the publish function) is
 * dropped, counted in `gateway_stream_entries_malformed_total{stream="client_events"}` and logged
 * with its id; it only moves the reader's cursor.
 */
export class RedisUserHistory implements UserHistoryReader {
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;

  constructor(
    private readonly client: RedisCommands,
    private readonly keyPrefix: string,
    options: RedisUserHistoryOptions = {},
  ) {
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = options.logger ?? noopLogger;
  }

  async position(userId: string): Promise<HistoryPosition> {
    const meta = flatToRecord(await this.client.command(['HGETALL', routedUserKeys(this.keyPrefix, userId).meta]));
    const offset = Number(meta['offset'] ?? 0);
    const lastId = meta['last_id'];
    const previous = epochLink(meta);
    return {
      epoch: meta['epoch'] ?? '',
      offset: Number.isSafeInteger(offset) && offset >= 0 ? offset : 0,
      lastId: lastId !== undefined && isStreamId(lastId) ? lastId : '0-0',
      ...(previous === undefined ? {} : { previous }),
    };
  }

  async eventsAfter(userId: string, afterId: string, count: number): Promise<SequencedEvent[]> {
    const reply = await this.client.command(['XRANGE', routedUserKeys(this.keyPrefix, userId).history, `(${afterId}`, '+', 'COUNT', String(count)]);
    return parseEntries(reply).map((entry) => {
      const offset = Number(entry.fields['offset']);
      if (entry.fields['user_id'] !== userId) {
        this.metrics.streamEntriesMalformed.add(1, { stream: 'client_events' });
        this.logger.warn('malformed stream entry dropped', { stream: 'client_events', entry_id: entry.id, reason: MISKEYED_ENTRY_REASON });
        // Epoch '' makes the sequencer skip it; the cursor still moves past it.
        return { id: entry.id, offset: 0, epoch: '', entry };
      }
      // An entry without a valid offset still moves the cursor; epoch '' makes the sequencer skip it.
      const valid = Number.isSafeInteger(offset) && offset >= 1;
      const previous = valid ? epochLink(entry.fields) : undefined;
      return {
        id: entry.id,
        offset: valid ? offset : 0,
        epoch: valid ? (entry.fields['epoch'] ?? '') : '',
        entry,
        ...(previous === undefined ? {} : { previous }),
      };
    });
  }
}

/** `prev_epoch`, `prev_offset`, `prev_last_id` of a meta hash, history entry or channel message; undefined unless all valid. */
export function epochLink(fields: Readonly<Record<string, unknown>>): EpochLink | undefined {
  const epoch = fields['prev_epoch'];
  const offset = Number(fields['prev_offset']);
  const lastId = fields['prev_last_id'];
  if (typeof epoch !== 'string' || epoch === '' || typeof lastId !== 'string' || !isStreamId(lastId)) return undefined;
  if (typeof fields['prev_offset'] !== 'string' && typeof fields['prev_offset'] !== 'number') return undefined;
  if (!Number.isSafeInteger(offset) || offset < 0) return undefined;
  return { epoch, offset, lastId };
}

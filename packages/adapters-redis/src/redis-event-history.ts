import { compareStreamIds, type EventHistory, type EventHistoryPage } from '@edge-gateway/core';
import type { RawReply, RedisClient } from './redis-client.js';
import { RedisCommandError } from './redis-command-error.js';
import { parseEntries } from './stream-reply.js';

/** Options of {@link RedisEventHistory}. */
export interface RedisEventHistoryOptions {
  /** The client-events stream key, used as configured (not prefixed). */
  streamKey: string;
}

/**
 * Past client events for `resume_after_event_id` (SPEC §8.3): `XRANGE key (afterId + COUNT n`.
 * Truncation is detected with the stream's `max-deleted-entry-id` (`XINFO STREAM`, Redis 7+):
 * when `afterId` is older than the newest deleted/trimmed entry, entries after it may be gone.
 * A missing stream has no entries and is not truncated.
 */
export class RedisEventHistory implements EventHistory {
  constructor(
    private readonly client: RedisClient,
    private readonly options: RedisEventHistoryOptions,
  ) {}

  async readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
    const key = this.options.streamKey;
    // Range first, then the deletion mark: a trim in between can only make us over-report.
    const entries = parseEntries(await this.client.command(['XRANGE', key, `(${afterId}`, '+', 'COUNT', String(Math.max(1, count))]));
    const maxDeleted = await this.maxDeletedEntryId(key);
    const truncated = maxDeleted !== undefined && compareStreamIds(afterId, maxDeleted) < 0;
    return { entries, truncated };
  }

  private async maxDeletedEntryId(key: string): Promise<string | undefined> {
    let reply: RawReply;
    try {
      reply = await this.client.command(['XINFO', 'STREAM', key]);
    } catch (err) {
      if (err instanceof RedisCommandError && /no such key/i.test(err.message)) return undefined;
      throw err;
    }
    if (!Array.isArray(reply)) return undefined;
    for (let i = 0; i + 1 < reply.length; i += 2) {
      if (reply[i] === 'max-deleted-entry-id') return String(reply[i + 1]);
    }
    return undefined;
  }
}

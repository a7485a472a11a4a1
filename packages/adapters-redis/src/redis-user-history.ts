import { isStreamId, type HistoryPosition, type SequencedEvent, type UserHistoryReader } from '@edge-gateway/core';
import type { RedisCommands } from './redis-commands.js';
import { flatToRecord } from './redis-session-store.js';
import { routedUserKeys } from './routed-keys.js';
import { parseEntries } from './stream-reply.js';

/**
 * The per-user histories of routed fan-out (SPEC §9.2) for the core's `UserSequencer`: the
 * meta hash (`HGETALL`) gives the position, the history stream (`XRANGE`) the events.
 */
export class RedisUserHistory implements UserHistoryReader {
  constructor(
    private readonly client: RedisCommands,
    private readonly keyPrefix: string,
  ) {}

  async position(userId: string): Promise<HistoryPosition> {
    const meta = flatToRecord(await this.client.command(['HGETALL', routedUserKeys(this.keyPrefix, userId).meta]));
    const offset = Number(meta['offset'] ?? 0);
    const lastId = meta['last_id'];
    return {
      epoch: meta['epoch'] ?? '',
      offset: Number.isSafeInteger(offset) && offset >= 0 ? offset : 0,
      lastId: lastId !== undefined && isStreamId(lastId) ? lastId : '0-0',
    };
  }

  async eventsAfter(userId: string, afterId: string, count: number): Promise<SequencedEvent[]> {
    const reply = await this.client.command(['XRANGE', routedUserKeys(this.keyPrefix, userId).history, `(${afterId}`, '+', 'COUNT', String(count)]);
    return parseEntries(reply).map((entry) => {
      const offset = Number(entry.fields['offset']);
      // An entry without a valid offset still moves the cursor; epoch '' makes the sequencer skip it.
      const valid = Number.isSafeInteger(offset) && offset >= 1;
      return { id: entry.id, offset: valid ? offset : 0, epoch: valid ? (entry.fields['epoch'] ?? '') : '', entry };
    });
  }
}

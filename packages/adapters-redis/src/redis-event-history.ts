import { compareStreamIds, type EventHistory, type EventHistoryPage, type GatewayMetrics, type StreamEntry } from '@edge-gateway/core';
import type { RawReply } from './redis-client.js';
import type { RedisCommands } from './redis-commands.js';
import type { DivergedRanges } from './diverged-ranges.js';
import { RedisCommandError } from './redis-command-error.js';
import type { StreamContinuity } from './stream-continuity.js';
import { parseEntries } from './stream-reply.js';

/** Options of {@link RedisEventHistory}. */
export interface RedisEventHistoryOptions {
  /**
   * The client-events stream key, used as configured (not prefixed); or, in routed mode, the
   * key of the subscriber's user's history stream (SPEC §9.3).
   */
  streamKey: string | ((userId: string) => string);
  /** Id ranges the client-events subscriber found lost in failovers: a resume inside one is truncated. */
  divergedRanges?: DivergedRanges;
  /**
   * The client-events subscriber's knowledge of the history (SPEC §5.6), instead of
   * `divergedRanges`: a resume inside a lost range is `diverged`; while the subscriber has not
   * checked the master's history after a reconnect, a resume waits for it (at most
   * `verifyWaitMs`) and is `diverged` if it does not come; entries read beyond the
   * subscriber's position are remembered, so a failover that loses them is noticed.
   */
  continuity?: StreamContinuity;
  /** How long a resume waits for that check (default 2000 ms). */
  verifyWaitMs?: number;
  /**
   * Counts the pages read (`gateway_push_history_reads_total`) and the stream entries they
   * read (`gateway_push_history_entries_read_total`), by `source` (SPEC §8.4).
   */
  metrics?: GatewayMetrics;
}

/**
 * Past client events for `resume_after_event_id` (SPEC §8.3): `XRANGE key (afterId + COUNT n`.
 *
 * `truncated` comes from `XINFO STREAM` (Redis 7+). Entries after `afterId` may be gone when
 * - `afterId` is older than `max-deleted-entry-id` (set by `XDEL`), or
 * - the stream lost entries (`entries-added` > `length`) and `afterId` is older than its
 *   first entry (or, if it is empty now, than `last-generated-id`). Redis 7.0 does not
 *   record trimmed ids (`XTRIM`/`MAXLEN` leave `max-deleted-entry-id` alone), so this is
 *   conservative: a cursor equal to the newest trimmed id is reported as truncated too,
 *   which matches SPEC §8.3 ("older than the stream's first entry").
 *
 * - `afterId` is no longer in the stream although it is newer than every deleted and trimmed id:
 *   it was lost in a failover (written to the old master, never replicated), and the new master
 *   may hold other entries below it that `XRANGE (afterId` skips (SPEC §5.6).
 * - `afterId` lies in a range the client-events subscriber found lost, even when the stream holds
 *   that id again (the new master reused it for another entry): `diverged` (SPEC §5.6).
 *
 * A missing stream has no entries and is not truncated.
 */
export const DEFAULT_VERIFY_WAIT_MS = 2000;

export class RedisEventHistory implements EventHistory {
  constructor(
    private readonly client: RedisCommands,
    private readonly options: RedisEventHistoryOptions,
  ) {}

  /** `XREVRANGE key + - COUNT 1` on the master (the user's own stream with a per-user key). */
  async newestId(userId = ''): Promise<string | undefined> {
    const key = typeof this.options.streamKey === 'string' ? this.options.streamKey : this.options.streamKey(userId);
    return parseEntries(await this.client.command(['XREVRANGE', key, '+', '-', 'COUNT', '1']))[0]?.id;
  }

  async readAfter(afterId: string, count: number, userId = ''): Promise<EventHistoryPage> {
    const key = typeof this.options.streamKey === 'string' ? this.options.streamKey : this.options.streamKey(userId);
    const continuity = this.options.continuity;
    // Before reading: entries read from a master whose history is not checked yet must not be
    // remembered as what streams were sent (they may hide lost ones with the same ids).
    const verified = continuity === undefined || (await continuity.waitVerified(this.options.verifyWaitMs ?? DEFAULT_VERIFY_WAIT_MS));
    const n = Math.max(1, count);
    // Range first, then the stream info: a trim in between can only make us over-report.
    const indexed = verified && typeof this.options.streamKey === 'string' ? await this.readIndexed(key, afterId, n, userId) : undefined;
    let entries = indexed?.entries;
    const source = entries === undefined ? 'scan' : 'index';
    if (entries === undefined) {
      entries = parseEntries(await this.client.command(['XRANGE', key, `(${afterId}`, '+', 'COUNT', String(n)]));
      this.options.metrics?.pushHistoryEntriesRead.add(entries.length, { source: 'scan' });
    }
    this.options.metrics?.pushHistoryReads.add(1, { source });
    if (verified) continuity?.noteRead(entries);
    const diverged = afterId !== '0-0' && (!verified || this.ranges?.contains(afterId) === true);
    const info = await this.streamInfo(key);
    const truncated = info !== undefined && (isTruncated(afterId, info) || !(await this.exists(key, afterId, info)));
    const page: { entries: StreamEntry[]; truncated: boolean; diverged?: boolean; caughtUp?: boolean } = { entries, truncated };
    if (diverged) page.diverged = true;
    if (indexed?.caughtUp === true) page.caughtUp = true;
    return page;
  }

  /**
   * The page from the subscriber's index (SPEC §8.3), when it covers `afterId`: the user's
   * entries it holds after `afterId`, fetched by id. Fewer than `count`: the user has no other
   * entry up to the subscriber's position, and everything after it reaches the streams already
   * registered through the subscriber's live feed (the index is fed by that feed), so the page is
   * `caughtUp` and nothing after the position is read (before, the page went on with the stream's
   * entries after the position: under load that chased the head of the stream, every user's
   * entries, until `max_scan`). `undefined`: read the stream itself (not covered, or an indexed
   * entry is no longer there: trimmed, deleted or lost, which only the full read can judge).
   */
  private async readIndexed(key: string, afterId: string, count: number, userId: string): Promise<{ entries: StreamEntry[]; caughtUp: boolean } | undefined> {
    const hit = this.options.continuity?.index?.read(userId, afterId, count);
    if (hit === undefined) return undefined;
    const replies = await Promise.all(hit.ids.map((id) => this.client.command(['XRANGE', key, id, id])));
    const entries: StreamEntry[] = [];
    for (const reply of replies) entries.push(...parseEntries(reply));
    this.options.metrics?.pushHistoryEntriesRead.add(entries.length, { source: 'index' });
    if (entries.length !== hit.ids.length) return undefined;
    return { entries, caughtUp: entries.length < count };
  }

  private get ranges(): DivergedRanges | undefined {
    return this.options.continuity?.ranges ?? this.options.divergedRanges;
  }

  /**
   * Whether `id` is still an entry of the stream. An id the client received that the stream no
   * longer holds was trimmed, deleted, or lost in a failover (asynchronous replication): the
   * master then may hold other entries with lower ids that `XRANGE (id` would skip, so the
   * resume must be reported incomplete rather than silently skip them (SPEC §5.6, §8.3).
   * `0-0` (nothing seen yet) always exists.
   */
  private async exists(key: string, id: string, info: Map<string, RawReply>): Promise<boolean> {
    if (id === '0-0') return true;
    // An id at or below max-deleted-entry-id may have been removed with XDEL on purpose; that
    // case (and trimming) is judged by isTruncated alone.
    if (compareStreamIds(id, String(info.get('max-deleted-entry-id') ?? '0-0')) <= 0) return true;
    // An id above the last generated one was never written to this stream's history.
    if (compareStreamIds(id, String(info.get('last-generated-id') ?? '0-0')) > 0) return false;
    // Below the first entry (or in an empty stream), trimming may explain it: isTruncated judges.
    const firstEntry = info.get('first-entry');
    if (!Array.isArray(firstEntry) || firstEntry.length === 0 || compareStreamIds(id, String(firstEntry[0])) < 0) return true;
    const found = parseEntries(await this.client.command(['XRANGE', key, id, id]));
    return found.length > 0;
  }

  private async streamInfo(key: string): Promise<Map<string, RawReply> | undefined> {
    let reply: RawReply;
    try {
      reply = await this.client.command(['XINFO', 'STREAM', key]);
    } catch (err) {
      if (err instanceof RedisCommandError && /no such key/i.test(err.message)) return undefined;
      throw err;
    }
    if (!Array.isArray(reply)) return undefined;
    const info = new Map<string, RawReply>();
    for (let i = 0; i + 1 < reply.length; i += 2) info.set(String(reply[i]), reply[i + 1] ?? null);
    return info;
  }
}

function isTruncated(afterId: string, info: Map<string, RawReply>): boolean {
  const maxDeleted = String(info.get('max-deleted-entry-id') ?? '0-0');
  if (compareStreamIds(afterId, maxDeleted) < 0) return true;
  const length = Number(info.get('length') ?? 0);
  const added = Number(info.get('entries-added') ?? length);
  if (added <= length) return false;
  const firstEntry = info.get('first-entry');
  const boundary = Array.isArray(firstEntry) && firstEntry.length > 0 ? String(firstEntry[0]) : String(info.get('last-generated-id') ?? '0-0');
  return compareStreamIds(afterId, boundary) < 0;
}

import { compareStreamIds, type StreamEntry, type UserEventIndex } from '@edge-gateway/core';
import { DivergedRanges } from './diverged-ranges.js';
import { RecentEntries, previousStreamId } from './recent-entries.js';

/** Options of {@link StreamContinuity}. */
export interface StreamContinuityOptions {
  /** Consumed entries remembered (id, fingerprint, user) to judge a failover (default 10000). */
  readonly consumedCapacity?: number;
  /** Entries read ahead of the subscriber (resume replays) remembered the same way (default 1024). */
  readonly aheadCapacity?: number;
  /** Lost id ranges kept (default 32). */
  readonly rangeCapacity?: number;
  /** The entry field whose value is remembered with each entry (default `user_id`). */
  readonly field?: string;
  /**
   * The per-user index of consumed entries that answers resumes without reading other users'
   * entries (`GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES`, SPEC §8.3); keyed by `field`. Without it
   * every resume reads the stream from the client's id.
   */
  readonly index?: UserEventIndex;
  /**
   * Entries of the stream's tail read into the index when the subscriber starts (default 10000,
   * `GATEWAY_PUSH_RESUME_MAX_SCAN`'s default: what one resume could scan), so that resumes right
   * after a restart (a fleet restart's reconnect storm) read the device's own entries instead of
   * scanning; 0 starts the index empty. The read is paged ({@link INDEX_BACKFILL_PAGE} entries)
   * and best effort: a failed page leaves the index covering what was read.
   */
  readonly indexBackfill?: number;
}

/** Default of {@link StreamContinuityOptions.indexBackfill}. */
export const DEFAULT_INDEX_BACKFILL = 10_000;
/** Entries per `XREVRANGE` of the index backfill. */
export const INDEX_BACKFILL_PAGE = 100;

export const DEFAULT_CONSUMED_CAPACITY = 10_000;
export const DEFAULT_AHEAD_CAPACITY = 1024;

/**
 * What one process knows about the client-events history across failovers (SPEC §5.6), shared by
 * the stream subscriber and the resume history read:
 *
 * - `consumed`: the last entries the subscriber consumed, with their `user_id`;
 * - `ahead`: entries a resume read from the master beyond the subscriber's position (the
 *   subscriber reads a replica, which may lag), which streams were sent before the subscriber
 *   saw them;
 * - `ranges`: the id ranges found lost (a resume inside one is incomplete);
 * - whether the subscriber has checked the current master's history since it last lost its
 *   connection or the master changed: until it has, an id a resume is given cannot be judged.
 *
 * Memory is bounded by the capacities: about 100–400 bytes per remembered entry (an id, a
 * number and a user id of at most 256 characters).
 */
export class StreamContinuity {
  readonly consumed: RecentEntries;
  readonly ahead: RecentEntries;
  readonly ranges: DivergedRanges;
  /** See {@link StreamContinuityOptions.index}. */
  readonly index: UserEventIndex | undefined;
  /** See {@link StreamContinuityOptions.indexBackfill}; 0 without an index. */
  readonly indexBackfill: number;
  /** The subscriber's position: entries after it are "ahead". */
  position = '0-0';
  private pending: { promise: Promise<void>; resolve: () => void; since: number } | undefined;
  private readonly field: string;

  constructor(options: StreamContinuityOptions = {}) {
    const field = options.field ?? 'user_id';
    this.field = field;
    this.index = options.index;
    const backfill = options.indexBackfill ?? DEFAULT_INDEX_BACKFILL;
    if (!Number.isSafeInteger(backfill) || backfill < 0) throw new RangeError('StreamContinuity indexBackfill must be a non-negative integer');
    // No index, or one turned off (0 bytes, GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES=0): nothing to fill at startup.
    this.indexBackfill = options.index === undefined || options.index.maxBytes === 0 ? 0 : backfill;
    this.consumed = new RecentEntries(options.consumedCapacity ?? DEFAULT_CONSUMED_CAPACITY, field);
    this.ahead = new RecentEntries(options.aheadCapacity ?? DEFAULT_AHEAD_CAPACITY, field);
    this.ranges = new DivergedRanges(options.rangeCapacity);
  }

  /**
   * The subscriber (re)starts reading strictly after `after`: the index covers what follows it,
   * nothing before (a rewind after a failover included: what it held may be lost entries).
   */
  startedAfter(after: string): void {
    this.index?.reset(after);
  }

  /**
   * The subscriber starts after `after` and has read `tail`, the stream's entries up to `after`
   * in stream order (at most {@link StreamContinuity.indexBackfill}): the index learns them and
   * covers everything after the entry before the first (the whole stream when `complete`).
   */
  startedAfterTail(after: string, tail: readonly StreamEntry[], complete: boolean): void {
    const index = this.index;
    if (index === undefined || tail.length === 0) {
      this.startedAfter(after);
      return;
    }
    index.reset(complete ? '0-0' : previousStreamId((tail[0] as StreamEntry).id));
    for (const entry of tail) index.add(entry.id, entry.fields[this.field]);
    // The tail ends at `after` unless the stream moved meanwhile; coverage must end there.
    if (index.through !== after) index.reset(after);
  }

  /** The subscriber consumed `entry` (in stream order): the index learns it. */
  consumedEntry(entry: StreamEntry): void {
    this.index?.add(entry.id, entry.fields[this.field]);
  }

  /** The subscriber stopped: nothing feeds the index any more, so it answers nothing. */
  stopped(): void {
    this.index?.clear();
  }

  /** Whether the subscriber has checked the current master's history (see the class comment). */
  get verified(): boolean {
    return this.pending === undefined;
  }

  /** The subscriber lost its connection or the master changed: its history must be checked again. */
  markUnverified(): void {
    if (this.pending !== undefined) return;
    let resolve = (): void => undefined;
    const promise = new Promise<void>((r) => (resolve = r));
    this.pending = { promise, resolve, since: performance.now() };
  }

  /** The subscriber checked the master's history (and recorded what was lost). */
  markVerified(): void {
    const pending = this.pending;
    this.pending = undefined;
    pending?.resolve();
  }

  /**
   * Resolves `true` once {@link StreamContinuity.verified} (at once when it is), `false` when the
   * check is still missing `timeoutMs` after it became needed (so the pages of one resume, and
   * resumes arriving later, do not each wait the whole time).
   */
  async waitVerified(timeoutMs: number): Promise<boolean> {
    const pending = this.pending;
    if (pending === undefined) return true;
    const left = pending.since + timeoutMs - performance.now();
    if (left <= 0) return false;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), left);
      timer.unref();
    });
    try {
      return await Promise.race([pending.promise.then(() => true), expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Entries read from the master's history (in stream order): those after the subscriber's
   * position and not known yet are remembered as `ahead`. Call only while verified.
   */
  noteRead(entries: readonly StreamEntry[]): void {
    // Ascending: only the tail can be ahead of the subscriber.
    let from = entries.length;
    while (from > 0 && compareStreamIds((entries[from - 1] as StreamEntry).id, this.position) > 0) from -= 1;
    for (let i = from; i < entries.length; i++) {
      const entry = entries[i] as StreamEntry;
      // Known ones are kept as they were seen first: a newer read must not hide a lost entry.
      if (!this.ahead.has(entry.id) && !this.consumed.has(entry.id)) this.ahead.remember(entry);
    }
  }
}

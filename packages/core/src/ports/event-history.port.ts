import type { StreamEntry } from '../domain.js';

/** One page of history read after a cursor. */
export interface EventHistoryPage {
  /** Entries strictly after the requested id, in stream order. */
  readonly entries: readonly StreamEntry[];
  /** True when the stream no longer holds the requested id (it is older than the first entry). */
  readonly truncated: boolean;
  /**
   * True when the requested id lies in a range of the history that a failover lost (SPEC §5.6),
   * or the history could not yet be checked against the master after one: the id may now name
   * another entry (so `truncated` may be false), and what follows it cannot be trusted. Only
   * the id a client gave can be such an id: a caller paging on after an id it just read ignores it.
   */
  readonly diverged?: boolean;
  /**
   * True when the page ends at the live feed's position: the history holds no other entry for
   * the user up to the newest entry the process's live consumer has handed to the hub, and every
   * later entry reaches the streams registered before the read through that live feed. The
   * caller stops paging (a resume then costs the device's own missed events, not a chase of the
   * stream's head while the fleet writes). Only a history fed by the same live consumer as the
   * hub may say so (the Redis resume index, SPEC §8.3).
   */
  readonly caughtUp?: boolean;
}

/**
 * Read access to past client events, for `resume_after_event_id` (SPEC §8.3).
 *
 * Event ids are Redis stream ids (`<ms>-<seq>`), deliberately: they are part of the signed
 * event and of the wire contract (SPEC §2.1 validates `resume_after_event_id` as one), the
 * core orders them (`compareStreamIds`) to skip what a resume already replayed, and a client
 * event's `timestamp_ms` is the id's `<ms>`. An embedder's own event source must therefore
 * hand out ids of that shape, increasing in stream order (`InMemoryEventStream` does:
 * milliseconds of its clock, then a sequence within the millisecond). Opaque ids would need a
 * separate ordering key in `StreamEntry` and a wire change; nothing asked for that yet.
 */
export interface EventHistory {
  /**
   * Up to `count` raw entries strictly after `afterId`, in order. `truncated` tells whether
   * entries after `afterId` may have been trimmed away already. `userId` is the subscriber's
   * user: a per-user history (routed fan-out) reads only that user's stream; a shared stream
   * ignores it (the caller filters by target either way).
   */
  readAfter(afterId: string, count: number, userId: string): Promise<EventHistoryPage>;
  /**
   * The id of the newest entry the history holds now for `userId`'s streams (the shared stream's
   * newest entry; a per-user history's), `undefined` when it holds none. Asked only when a
   * resume bound (`max_events`, `max_bytes`, `max_scan`) stopped a replay: the live feed then
   * starts after it, so the missed events the replay did not send are not sent later by a live
   * consumer that lags the history (SPEC §8.3). Optional: without it those events may still be
   * delivered live.
   */
  newestId?(userId: string): Promise<string | undefined>;
}

import type { StreamEntry } from '../domain.js';

/**
 * The position an epoch continues: set on an epoch that a new master started over a history
 * another master wrote (SPEC §9.2). A reader that had delivered exactly up to there goes on
 * seamlessly; one that had delivered more lost those events in the failover.
 */
export interface EpochLink {
  /** The epoch continued. */
  readonly epoch: string;
  /** Its newest offset the new master held. */
  readonly offset: number;
  /** Its newest entry id the new master held (`0-0` when none). */
  readonly lastId: string;
}

/** One event of a user's sequence: its position (offset within an epoch) and its entry. */
export interface SequencedEvent {
  /** Stream id; increasing within the user's history. */
  readonly id: string;
  /** 1, 2, … within one epoch. */
  readonly offset: number;
  /** Changes when the user's history starts over (expired or lost). */
  readonly epoch: string;
  /** The event's fields (SPEC §5.4), for the client-events handler. */
  readonly entry: StreamEntry;
  /** On the first event of an epoch that continues another (a master change): what it continues. */
  readonly previous?: EpochLink;
}

/** Where a user's history stands: its epoch, the offset of its newest event and that event's id. */
export interface HistoryPosition {
  /** Empty when the user has no history (never published, or expired). */
  readonly epoch: string;
  readonly offset: number;
  /** `0-0` when there is none. */
  readonly lastId: string;
  /** When the epoch continues another (a master change): what it continues. */
  readonly previous?: EpochLink;
}

/**
 * Read access to the per-user histories of routed fan-out (SPEC §9.2): what a feed needs to
 * fill a gap, re-sync after a reconnect and notice a new epoch.
 */
export interface UserHistoryReader {
  /** The user's current position. */
  position(userId: string): Promise<HistoryPosition>;
  /** Up to `count` events of the user's history with an id after `afterId`, in order. */
  eventsAfter(userId: string, afterId: string, count: number): Promise<SequencedEvent[]>;
}

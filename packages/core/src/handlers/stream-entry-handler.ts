import type { StreamEntry } from '../domain.js';
import type { ConsumedStream } from '../observability/metrics.js';

/**
 * What a stream subscriber (Redis, or an embedder's own event source) hands entries to,
 * in stream order.
 */
export interface StreamEntryHandler {
  /** Label of the stream, for metrics and logs. */
  readonly stream: ConsumedStream;
  /** Handles one entry. Never throws for a malformed entry: it counts and logs it. */
  handle(entry: StreamEntry): void;
  /**
   * Optional: handles the entries of one read together, with the same outcome as `handle` on
   * each in order. A subscriber that has it calls it instead of `handle` and waits for it
   * before it reads again. Never rejects for a malformed entry.
   */
  handleBatch?(entries: readonly StreamEntry[]): void | Promise<void>;
  /**
   * The subscriber reconnected (after an error, or moved to a new master); entries may have
   * been missed meanwhile. `reconnect` says what it found (absent: nothing is known).
   */
  onReconnect?(reconnect?: StreamReconnect): void;
  /**
   * Entries the subscriber handed over (or the process otherwise handed out, e.g. replayed on a
   * resume) are no longer in the stream's history: a failover lost them (SPEC §5.6). Called
   * once per divergence found, after the subscriber repositioned, before it reads on (and
   * before `onReconnect`).
   */
  onHistoryLost?(loss: StreamHistoryLoss): void;
}

/** What a subscriber found when it reconnected (SPEC §5.6). */
export interface StreamReconnect {
  /** The last consumed entry is no longer on the master: entries were lost in a failover. */
  readonly historyDiverged: boolean;
  /** The reader moved because a new master was announced. */
  readonly masterChanged: boolean;
}

/** What a subscriber knows about entries a failover lost (SPEC §5.6). */
export interface StreamHistoryLoss {
  /**
   * The newest entry the lost history and the current one share: every entry after it that the
   * process knew of was lost. `undefined` when none of the entries the process remembers is
   * left, so the loss may reach back further than it can tell.
   */
  readonly after: string | undefined;
  /** The newest lost entry the process knew of. */
  readonly upTo: string;
  /** The distinct `user_id` values of the lost entries the process remembers (client events). */
  readonly userIds: readonly string[];
}

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
}

/** What a subscriber found when it reconnected (SPEC §5.6). */
export interface StreamReconnect {
  /** The last consumed entry is no longer on the master: entries were lost in a failover. */
  readonly historyDiverged: boolean;
  /** The reader moved because a new master was announced. */
  readonly masterChanged: boolean;
}

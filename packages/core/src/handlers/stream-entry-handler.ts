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
  /** The subscriber reconnected after an error; entries may have been missed meanwhile. */
  onReconnect?(): void;
}

import { compareStreamIds } from '@edge-gateway/core';

/** One id range `(after, upTo]` whose entries a subscriber consumed but the master lost. */
export interface DivergedRange {
  /** The newest entry both histories share (exclusive bound). */
  readonly after: string;
  /** The last entry consumed from the lost history (inclusive bound). */
  readonly upTo: string;
}

/**
 * The id ranges of a stream that diverged in failovers, as this process's subscriber found
 * them (SPEC §5.6). An event id inside such a range may now name another entry on the new
 * master (a master whose clock is behind reuses ids), so a resume after it cannot be trusted
 * even when the id exists: `RedisEventHistory` reports it as truncated. Bounded: only the
 * newest `capacity` ranges are kept.
 */
export class DivergedRanges {
  private readonly ranges: DivergedRange[] = [];

  constructor(private readonly capacity = 32) {}

  /** Records that entries in `(after, upTo]` were lost. */
  add(range: DivergedRange): void {
    this.ranges.push(range);
    if (this.ranges.length > this.capacity) this.ranges.shift();
  }

  /** Whether `id` lies in a recorded range. */
  contains(id: string): boolean {
    return this.ranges.some((r) => compareStreamIds(id, r.after) > 0 && compareStreamIds(id, r.upTo) <= 0);
  }
}

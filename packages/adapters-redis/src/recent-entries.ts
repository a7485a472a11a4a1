import type { StreamEntry } from '@edge-gateway/core';

/** How many characters of each field value go into a fingerprint. */
const FINGERPRINT_VALUE_CHARS = 64;

/**
 * A cheap fingerprint of an entry's fields (FNV-1a over each name, the first 64 characters of
 * each value and each value's length). It tells a new entry apart from a lost one that had the
 * same id (a new master whose clock is behind reuses ids), at a bounded cost per entry however
 * large the payload is.
 */
export function fingerprint(fields: Readonly<Record<string, string>>): number {
  let hash = 0x811c9dc5;
  const mix = (text: string): void => {
    for (let i = 0; i < text.length; i++) {
      hash ^= text.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193);
    }
  };
  for (const name of Object.keys(fields).sort()) {
    const value = fields[name] as string;
    mix(name);
    mix('\u0000');
    mix(value.length > FINGERPRINT_VALUE_CHARS ? value.slice(0, FINGERPRINT_VALUE_CHARS) : value);
    mix(`\u0000${value.length}\u0000`);
  }
  return hash >>> 0;
}

/**
 * The ids and fingerprints of the last `capacity` entries a stream subscriber consumed. After
 * a failover it tells which entries of the new master's history the subscriber has already
 * handed on (same id and fingerprint) and which are new to it.
 */
export class RecentEntries {
  private readonly prints = new Map<string, number>();

  constructor(private readonly capacity = 1024) {}

  /** Remembers `entry` as consumed (forgetting the oldest beyond the capacity). */
  remember(entry: StreamEntry): void {
    this.prints.delete(entry.id);
    this.prints.set(entry.id, fingerprint(entry.fields));
    if (this.prints.size > this.capacity) {
      const oldest = this.prints.keys().next();
      if (oldest.done !== true) this.prints.delete(oldest.value);
    }
  }

  /** `true`: consumed; `false`: an entry with this id was consumed but had other fields; `undefined`: not remembered. */
  matches(entry: StreamEntry): boolean | undefined {
    const known = this.prints.get(entry.id);
    return known === undefined ? undefined : known === fingerprint(entry.fields);
  }

  /** Whether an entry with this id was consumed (and is still remembered). */
  has(id: string): boolean {
    return this.prints.has(id);
  }

  /** Number of remembered entries. */
  get size(): number {
    return this.prints.size;
  }
}

/** The stream id right before `id`, so that a read "after" it includes `id`. */
export function previousStreamId(id: string): string {
  const [ms, seq] = id.split('-');
  const msPart = BigInt(ms ?? '0');
  const seqPart = BigInt(seq ?? '0');
  if (seqPart > 0n) return `${msPart}-${seqPart - 1n}`;
  if (msPart > 0n) return `${msPart - 1n}-18446744073709551615`;
  return '0-0';
}

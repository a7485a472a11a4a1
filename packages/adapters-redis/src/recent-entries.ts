import { compareStreamIds, type StreamEntry } from '@edge-gateway/core';

/** How many characters of each field value go into a fingerprint. */
const FINGERPRINT_VALUE_CHARS = 64;

/** Longest value of the remembered field (the user_id rule of SPEC §5.1); longer ones are not kept. */
const MAX_REMEMBERED_VALUE_CHARS = 256;

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

interface Remembered {
  readonly print: number;
  /** The value of the remembered field (e.g. `user_id`), when present and at most 256 characters. */
  readonly value: string | undefined;
}

/**
 * The ids and fingerprints of the last `capacity` entries a stream subscriber consumed (and,
 * with `field`, that field's value, e.g. the client event's `user_id`). After a failover it
 * tells which entries of the new master's history the subscriber has already handed on (same id
 * and fingerprint), which are new to it, and whose entries were lost. Memory: `capacity` map
 * entries of an id, a number and at most 256 characters.
 */
export class RecentEntries {
  private readonly known = new Map<string, Remembered>();

  constructor(
    readonly capacity = 1024,
    private readonly field?: string,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('RecentEntries capacity must be a positive integer');
  }

  /** Remembers `entry` as consumed (forgetting the oldest beyond the capacity). */
  remember(entry: StreamEntry): void {
    this.known.delete(entry.id);
    const value = this.field === undefined ? undefined : entry.fields[this.field];
    this.known.set(entry.id, { print: fingerprint(entry.fields), value: value !== undefined && value.length <= MAX_REMEMBERED_VALUE_CHARS ? value : undefined });
    if (this.known.size > this.capacity) {
      const oldest = this.known.keys().next();
      if (oldest.done !== true) this.known.delete(oldest.value);
    }
  }

  /** `true`: consumed; `false`: an entry with this id was consumed but had other fields; `undefined`: not remembered. */
  matches(entry: StreamEntry): boolean | undefined {
    const known = this.known.get(entry.id);
    return known === undefined ? undefined : known.print === fingerprint(entry.fields);
  }

  /** Whether an entry with this id was consumed (and is still remembered). */
  has(id: string): boolean {
    return this.known.has(id);
  }

  /** Number of remembered entries. */
  get size(): number {
    return this.known.size;
  }

  /** Id of the entry remembered longest (the oldest consumed), if any. */
  get oldestId(): string | undefined {
    const first = this.known.keys().next();
    return first.done === true ? undefined : first.value;
  }

  /** The newest remembered id after `after`, if any. */
  newestAfter(after: string): string | undefined {
    let newest: string | undefined;
    for (const id of this.known.keys()) {
      if (compareStreamIds(id, after) > 0 && (newest === undefined || compareStreamIds(id, newest) > 0)) newest = id;
    }
    return newest;
  }

  /** Distinct values of the remembered field of the entries in `(after, upTo]` (`after` undefined: no lower bound). */
  valuesIn(after: string | undefined, upTo: string, into: Set<string> = new Set()): Set<string> {
    for (const [id, { value }] of this.known) {
      if (value === undefined || compareStreamIds(id, upTo) > 0) continue;
      if (after !== undefined && compareStreamIds(id, after) <= 0) continue;
      into.add(value);
    }
    return into;
  }

  /** Forgets the entries in `(after, upTo]` (`after` undefined: no lower bound). */
  forgetIn(after: string | undefined, upTo: string): void {
    for (const id of [...this.known.keys()]) {
      if (compareStreamIds(id, upTo) > 0) continue;
      if (after !== undefined && compareStreamIds(id, after) <= 0) continue;
      this.known.delete(id);
    }
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

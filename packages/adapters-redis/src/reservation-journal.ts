/** Default `GATEWAY_REDIS_REPLAY_REASSERT_WINDOW`: how long a confirmed reservation is kept in the journal. */
export const DEFAULT_REPLAY_JOURNAL_WINDOW_MS = 30_000;

/** Default `GATEWAY_REDIS_REPLAY_REASSERT_MAX_ENTRIES`: the journal's bound. */
export const DEFAULT_REPLAY_JOURNAL_MAX_ENTRIES = 100_000;

/** One reservation the journal holds. */
export interface JournaledReservation {
  readonly key: string;
  /** When the reservation expires in Redis (ms epoch; its `PX` counted from when it was confirmed). */
  readonly expiresAtMs: number;
}

interface Slot {
  key: string;
  /** When it was confirmed (ms epoch). */
  at: number;
  expiresAtMs: number;
}

/**
 * The replay reservations this process confirmed in the last `windowMs` (SPEC §5.2), at most
 * `maxEntries` of them (the oldest go first). A Redis failover can lose a reservation the old
 * master acknowledged, even one a replica confirmed with `WAIT`: during a `SENTINEL FAILOVER`
 * the old master keeps taking writes after the chosen replica was promoted, and its other
 * replicas acknowledge them until they too are re-pointed, after which all of them are gone. The
 * journal closes that hole: a request id it holds is a replay without asking Redis, and after a
 * master change every reservation it holds is written again on the new master (`SET NX` with
 * the time it has left).
 *
 * Memory: a ring of `maxEntries` slots plus a map of the live keys; about 150 bytes per entry
 * with the key (~80 characters), so ~15 MB at the default 100,000.
 */
export class ReservationJournal {
  private readonly ring: Array<Slot | undefined>;
  private readonly live = new Map<string, Slot>();
  /** Index of the oldest slot. */
  private head = 0;
  private used = 0;
  /** Entries dropped before their window ended (the bound was reached). */
  evictedEarly = 0;

  constructor(
    readonly windowMs = DEFAULT_REPLAY_JOURNAL_WINDOW_MS,
    readonly maxEntries = DEFAULT_REPLAY_JOURNAL_MAX_ENTRIES,
  ) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 0) throw new RangeError('maxEntries must be an integer >= 0');
    if (!(windowMs >= 0)) throw new RangeError('windowMs must be >= 0');
    this.ring = new Array<Slot | undefined>(maxEntries);
  }

  /** Whether the journal is switched off (a window or bound of 0). */
  get disabled(): boolean {
    return this.maxEntries === 0 || this.windowMs === 0;
  }

  /** Entries held now (one past its window or expiry counts until the next call notices it). */
  get size(): number {
    return this.live.size;
  }

  /** Records a confirmed reservation. */
  add(key: string, expiresAtMs: number, nowMs: number): void {
    if (this.disabled) return;
    this.expire(nowMs);
    if (this.used === this.maxEntries) {
      const oldest = this.ring[this.head] as Slot;
      if (this.live.get(oldest.key) === oldest) {
        this.live.delete(oldest.key);
        this.evictedEarly += 1;
      }
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.maxEntries;
      this.used -= 1;
    }
    const slot: Slot = { key, at: nowMs, expiresAtMs };
    this.ring[(this.head + this.used) % this.maxEntries] = slot;
    this.used += 1;
    this.live.set(key, slot);
  }

  /** Whether `key` is a reservation this process confirmed within the window that has not expired. */
  has(key: string, nowMs: number): boolean {
    const slot = this.live.get(key);
    if (slot === undefined) return false;
    if (slot.at < nowMs - this.windowMs || slot.expiresAtMs <= nowMs) {
      this.live.delete(key);
      return false;
    }
    return true;
  }

  /** Forgets `key` (its command never ran and the reservation was withdrawn). */
  delete(key: string): void {
    this.live.delete(key);
  }

  /** The reservations held now, newest first (a failover loses the newest). */
  list(nowMs: number): JournaledReservation[] {
    this.expire(nowMs);
    const out: JournaledReservation[] = [];
    for (let i = this.used - 1; i >= 0; i--) {
      const slot = this.ring[(this.head + i) % this.maxEntries] as Slot;
      if (this.live.get(slot.key) !== slot) continue;
      if (slot.expiresAtMs > nowMs) out.push({ key: slot.key, expiresAtMs: slot.expiresAtMs });
      else this.live.delete(slot.key);
    }
    return out;
  }

  /** Drops the entries older than the window from the front of the ring. */
  private expire(nowMs: number): void {
    const oldestKept = nowMs - this.windowMs;
    while (this.used > 0) {
      const slot = this.ring[this.head] as Slot;
      if (slot.at >= oldestKept) break;
      if (this.live.get(slot.key) === slot) this.live.delete(slot.key);
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.maxEntries;
      this.used -= 1;
    }
  }
}

import { compareStreamIds, isValidUserId } from '../validation.js';

/** `GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES` default: 64 MiB, about 700,000 entries (SPEC §8.3): 140 s at 5,000 entries/s. */
export const DEFAULT_RESUME_INDEX_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Bytes charged for one indexed entry besides its id's characters: the id string's header and
 * three array slots (the user's list, the insertion order's id and owner), rounded up to cover
 * the arrays' spare capacity. Measured (Node 20): 1,000,000 entries of 10,000 users with
 * 15-character ids took 68 bytes each of V8 heap; the charge (80 + id length, 95 there) stays
 * above that.
 */
export const INDEX_ENTRY_BYTES = 80;

/** Bytes charged for a user with entries in the index besides the user id's characters (map slot, list object, its array). */
export const INDEX_USER_BYTES = 160;

/** One user's indexed ids in stream order; `head` is the oldest still held. */
interface UserIds {
  readonly userId: string;
  readonly ids: string[];
  head: number;
}

/** What {@link UserEventIndex.read} found. */
export interface IndexedIds {
  /** The user's entry ids strictly after the cursor, in stream order, at most the limit asked. */
  readonly ids: readonly string[];
  /**
   * The id through which the index saw every entry of the stream (its feed's position): when
   * fewer ids than the limit came back, the user has no other entries up to it; later entries
   * reach a stream registered before the read through that feed.
   */
  readonly through: string;
}

/**
 * A per-user index of the recent entries of the shared client-events stream, so that a resume
 * (SPEC §8.3) costs the device's own missed events, not the whole fleet's (issue 25). It is fed
 * by the process's live consumer of the stream, every entry in stream order, and keeps only the
 * entries' ids per `user_id` (the reader fetches the entries by id), evicting the oldest beyond
 * `maxBytes` (see {@link INDEX_ENTRY_BYTES}).
 *
 * Coverage: the index knows every entry after {@link UserEventIndex.coveredFrom} up to
 * {@link UserEventIndex.through}. That starts where the feed starts (`reset`), moves up as the
 * oldest entries are evicted, and is lost when the feed goes back (`reset` again, or an entry not
 * after the previous one). A cursor below it is not answered (`read` returns `undefined`): the
 * caller must read the stream itself. Entries whose `user_id` no stream can have (missing,
 * invalid) are not held but still move the coverage: a resume would drop them as malformed.
 */
export class UserEventIndex {
  private readonly users = new Map<string, UserIds>();
  /** Insertion order, oldest at `head`: each entry's id and owner. */
  private orderIds: string[] = [];
  private orderOwners: UserIds[] = [];
  private head = 0;
  private used = 0;
  private from: string | undefined;
  private last = '0-0';

  constructor(readonly maxBytes: number = DEFAULT_RESUME_INDEX_MAX_BYTES) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError('UserEventIndex maxBytes must be a non-negative integer');
  }

  /** Bytes charged for what is held now (at most `maxBytes`). */
  get bytes(): number {
    return this.used;
  }

  /** Entries held now. */
  get size(): number {
    return this.orderIds.length - this.head;
  }

  /** Every entry after this id is known (up to {@link UserEventIndex.through}); undefined: nothing is covered. */
  get coveredFrom(): string | undefined {
    return this.from;
  }

  /** The id of the last entry the feed handed in (or the reset point). */
  get through(): string {
    return this.last;
  }

  /** Forgets everything: the feed continues strictly after `after`, older entries are unknown. */
  reset(after: string): void {
    this.clearEntries();
    this.from = this.maxBytes > 0 ? after : undefined;
    this.last = after;
  }

  /** Forgets everything and covers nothing until the next `reset` (the feed stopped). */
  clear(): void {
    this.clearEntries();
    this.from = undefined;
  }

  /**
   * The feed consumed the entry `id` whose `user_id` field is `userId`. Ids must increase: an id
   * not after the previous one means the feed went back, and coverage restarts after it.
   */
  add(id: string, userId: string | undefined): void {
    if (this.from === undefined) return;
    if (compareStreamIds(id, this.last) <= 0) {
      this.reset(id);
      return;
    }
    this.last = id;
    if (userId === undefined || !isValidUserId(userId)) return;
    let list = this.users.get(userId);
    if (list === undefined) {
      list = { userId, ids: [], head: 0 };
      this.users.set(userId, list);
      this.used += INDEX_USER_BYTES + userId.length;
    }
    list.ids.push(id);
    this.orderIds.push(id);
    this.orderOwners.push(list);
    this.used += INDEX_ENTRY_BYTES + id.length;
    while (this.used > this.maxBytes && this.head < this.orderIds.length) this.evictOldest();
  }

  /**
   * Up to `limit` ids of `userId`'s entries strictly after `after`, in stream order; `undefined`
   * when the index does not cover `after` (entries after it may have been evicted, or were
   * consumed before the feed started here).
   */
  read(userId: string, after: string, limit: number): IndexedIds | undefined {
    if (this.from === undefined || compareStreamIds(after, this.from) < 0) return undefined;
    const list = this.users.get(userId);
    if (list === undefined || limit < 1) return { ids: [], through: this.last };
    // Binary search for the first id after `after`.
    let lo = list.head;
    let hi = list.ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareStreamIds(list.ids[mid] as string, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return { ids: list.ids.slice(lo, Math.min(list.ids.length, lo + limit)), through: this.last };
  }

  private evictOldest(): void {
    const id = this.orderIds[this.head] as string;
    const owner = this.orderOwners[this.head] as UserIds;
    this.head += 1;
    this.used -= INDEX_ENTRY_BYTES + id.length;
    // Both lists are in stream order: the owner's oldest is this entry.
    owner.head += 1;
    if (owner.head === owner.ids.length) {
      this.users.delete(owner.userId);
      this.used -= INDEX_USER_BYTES + owner.userId.length;
    } else if (owner.head > 64 && owner.head * 2 > owner.ids.length) {
      owner.ids.splice(0, owner.head);
      owner.head = 0;
    }
    // Everything after the evicted entry is still held: cursors from it on stay covered.
    this.from = id;
    if (this.head > 1024 && this.head * 2 > this.orderIds.length) {
      this.orderIds = this.orderIds.slice(this.head);
      this.orderOwners = this.orderOwners.slice(this.head);
      this.head = 0;
    }
  }

  private clearEntries(): void {
    this.users.clear();
    this.orderIds = [];
    this.orderOwners = [];
    this.head = 0;
    this.used = 0;
  }
}

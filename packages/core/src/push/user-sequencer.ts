import type { StreamEntry } from '../domain.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { SequencedEvent, UserHistoryReader } from '../ports/user-history.port.js';
import { compareStreamIds } from '../validation.js';

/** Where sequenced events go: the core's client-events handler. */
export interface SequencedDelivery {
  handleBatch(entries: readonly StreamEntry[]): Promise<void>;
  /** Every stream of the user is told that continuity ended (`gateway.resume_incomplete`). */
  discontinuity(userId: string): number;
}

/** Options of {@link UserSequencer}. */
export interface UserSequencerOptions {
  readonly history: UserHistoryReader;
  readonly delivery: SequencedDelivery;
  /** History events read per page when filling a gap (default 500). */
  readonly page?: number;
  /** A history read failed: the caller should call {@link UserSequencer.resyncAll} again later. */
  readonly onReadFailure?: (error: unknown) => void;
  readonly logger?: Logger;
}

interface Sequence {
  baselined: boolean;
  epoch: string;
  offset: number;
  lastId: string;
  syncing: boolean;
  /** Sync again when the current one ends (a trigger arrived while syncing). */
  again: boolean;
  pending: SequencedEvent[];
}

/**
 * Keeps one user's events in order and complete on a routed feed (SPEC §9.3), whatever carries
 * the live events: each live event is delivered when it is the next one (offset + 1), dropped
 * when its id is not after the last delivered one, and otherwise (a lost event) the user's
 * history fills the gap first. A new epoch ends the continuity (`discontinuity`) and the new
 * epoch is read from its start; so do history events trimmed before they were read. After a
 * failover that lost unreplicated writes, the history's offsets go back: ids, not offsets,
 * decide what was delivered, so later events are still delivered.
 */
export class UserSequencer {
  private readonly users = new Map<string, Sequence>();
  private readonly page: number;
  private readonly logger: Logger;

  constructor(private readonly options: UserSequencerOptions) {
    this.page = options.page ?? 500;
    this.logger = options.logger ?? noopLogger;
  }

  /** Users sequenced now. */
  get size(): number {
    return this.users.size;
  }

  /** Starts sequencing `userId`; live events are held until {@link UserSequencer.baseline}. */
  add(userId: string): void {
    if (!this.users.has(userId)) this.users.set(userId, { baselined: false, epoch: '', offset: 0, lastId: '0-0', syncing: false, again: false, pending: [] });
  }

  /** Stops sequencing `userId` (its last stream closed). */
  remove(userId: string): void {
    this.users.delete(userId);
  }

  /**
   * Takes the user's current position as the start (call it once its live events are being
   * received): held events after it are then delivered. Rejects when the history cannot be read.
   */
  async baseline(userId: string): Promise<void> {
    const position = await this.options.history.position(userId);
    const seq = this.users.get(userId);
    if (seq === undefined) return;
    seq.epoch = position.epoch;
    seq.offset = position.offset;
    seq.lastId = position.lastId;
    seq.baselined = true;
    this.drain(userId, seq);
  }

  /** One live event of `userId`. */
  receive(userId: string, event: SequencedEvent): void {
    const seq = this.users.get(userId);
    if (seq === undefined) return;
    if (!seq.baselined || seq.syncing) {
      seq.pending.push(event);
      return;
    }
    this.apply(userId, seq, event);
  }

  /** Reads the user's history for anything not delivered yet (e.g. a live event was unreadable). */
  resync(userId: string): Promise<void> {
    const seq = this.users.get(userId);
    return seq === undefined || !seq.baselined ? Promise.resolve() : this.sync(userId, seq);
  }

  /** Re-syncs every baselined user (after a reconnect: live events may have been missed). */
  async resyncAll(): Promise<void> {
    await Promise.all([...this.users.keys()].map((userId) => this.resync(userId)));
  }

  private apply(userId: string, seq: Sequence, event: SequencedEvent): void {
    if (event.epoch !== seq.epoch) {
      if (seq.epoch !== '') this.options.delivery.discontinuity(userId);
      seq.epoch = event.epoch;
      seq.offset = 0;
      seq.lastId = '0-0';
    }
    if (compareStreamIds(event.id, seq.lastId) <= 0) return;
    if (event.offset === seq.offset + 1) {
      seq.offset = event.offset;
      seq.lastId = event.id;
      void this.deliver([event.entry]);
      return;
    }
    seq.pending.push(event);
    void this.sync(userId, seq);
  }

  private drain(userId: string, seq: Sequence): void {
    const pending = seq.pending.sort((a, b) => compareStreamIds(a.id, b.id));
    seq.pending = [];
    for (const event of pending) {
      if (seq.syncing) seq.pending.push(event);
      else this.apply(userId, seq, event);
    }
  }

  private async sync(userId: string, seq: Sequence): Promise<void> {
    if (seq.syncing) {
      seq.again = true;
      return;
    }
    seq.syncing = true;
    try {
      do {
        seq.again = false;
        await this.syncOnce(userId, seq);
      } while (seq.again && this.users.get(userId) === seq);
    } catch (error) {
      this.logger.warn('user history read failed; retrying on the next trigger', { error: String(error) });
      this.options.onReadFailure?.(error);
    } finally {
      seq.syncing = false;
    }
    if (this.users.get(userId) === seq) this.drain(userId, seq);
  }

  private async syncOnce(userId: string, seq: Sequence): Promise<void> {
    const position = await this.options.history.position(userId);
    if (position.epoch !== '' && seq.epoch !== '' && position.epoch !== seq.epoch) {
      this.options.delivery.discontinuity(userId);
      seq.epoch = position.epoch;
      seq.offset = 0;
      seq.lastId = '0-0';
    }
    if (seq.epoch === '') seq.epoch = position.epoch;
    if (compareStreamIds(position.lastId, seq.lastId) <= 0) {
      // Nothing newer. A lower offset means a failover lost writes that were delivered: the
      // next event continues from the history's offset (those events are gone for everyone).
      if (position.epoch === seq.epoch && position.offset < seq.offset) seq.offset = position.offset;
      return;
    }
    let reported = false;
    for (;;) {
      const events = await this.options.history.eventsAfter(userId, seq.lastId, this.page);
      if (events.length === 0) break;
      const fresh: StreamEntry[] = [];
      for (const event of events) {
        seq.lastId = event.id;
        if (event.epoch !== seq.epoch) continue;
        if (event.offset > seq.offset + 1 && !reported) {
          // Trimmed away before it was read: the streams miss events.
          reported = true;
          this.options.delivery.discontinuity(userId);
        }
        seq.offset = event.offset;
        fresh.push(event.entry);
      }
      if (fresh.length > 0) await this.deliver(fresh);
      if (events.length < this.page) break;
    }
  }

  private async deliver(entries: readonly StreamEntry[]): Promise<void> {
    try {
      await this.options.delivery.handleBatch(entries);
    } catch (error) {
      this.logger.error('sequenced delivery failed', { entry_id: entries[0]?.id, error: String(error) });
    }
  }
}

import type { StreamEntry } from '../domain.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { EpochLink, SequencedEvent, UserHistoryReader } from '../ports/user-history.port.js';
import { compareStreamIds } from '../validation.js';

/**
 * Where sequenced events go: the core's client-events handler. The port a routed fan-out feed
 * (`RedisRoutedFeed` of `@edge-gateway/adapters-redis`) delivers to.
 */
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
  /**
   * `gateway_stream_history_diverged_total{stream="client_events"}` (per user) and
   * `gateway_push_loss_notices_total{reason="history_diverged"}` (per session told): delivered
   * events the history lost.
   */
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
}

/** Why continuity ended for a user (logged). */
type Break =
  /** Events were delivered that the history no longer holds: lost in a failover (or a restart). */
  | 'lost'
  /** The history started over without a link to the old one (expired, or lost entirely). */
  | 'new_epoch'
  /** The history is gone after events were delivered: expired, or lost entirely with its master. */
  | 'gone'
  /** History entries were trimmed before they were read, or offsets do not follow each other. */
  | 'gap';

interface Sequence {
  baselined: boolean;
  epoch: string;
  offset: number;
  /** The newest id delivered (or skipped): the history is read after it. */
  lastId: string;
  /**
   * `lastId` was reset to read `epoch` from the history's start: entries of other (older)
   * epochs before it are skipped.
   */
  seeking: boolean;
  syncing: boolean;
  /** Sync again when the current one ends (a trigger arrived while syncing). */
  again: boolean;
  pending: SequencedEvent[];
}

/**
 * Keeps one user's events in order and complete on a routed feed (SPEC §9.3), whatever carries
 * the live events: each live event is delivered when it is the next one (offset + 1), dropped
 * when its id is not after the last delivered one, and otherwise (a lost event) the user's
 * history fills the gap first.
 *
 * Continuity ends (`discontinuity`: the user's streams get `gateway.resume_incomplete`) when
 * events may be missing for good:
 * - the history no longer holds events that were delivered: its epoch stands before the
 *   newest delivered event, or a new master's epoch continues an older position (a failover
 *   lost writes the old master had acknowledged and published; counted in
 *   `gateway_stream_history_diverged_total{stream="client_events"}`);
 * - the history started over without a link (expired or lost), or is gone;
 * - history events were trimmed before they were read.
 * An epoch a new master started that continues exactly the newest delivered event (a failover
 * that lost nothing) goes on without a notice.
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
    if (!this.users.has(userId)) {
      this.users.set(userId, { baselined: false, epoch: '', offset: 0, lastId: '0-0', seeking: false, syncing: false, again: false, pending: [] });
    }
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
      if (seq.epoch === '') {
        // The first epoch since the baseline found no history.
        this.startEpoch(seq, event.epoch, true);
      } else if (continues(event.previous, seq)) {
        this.startEpoch(seq, event.epoch, false);
      } else if (event.previous === undefined && event.offset === 1) {
        // A history that started over (expired, or lost entirely): read from its start.
        this.broke(userId, seq, 'new_epoch', { epoch: event.epoch, lastId: event.id });
        seq.lastId = '0-0';
        this.startEpoch(seq, event.epoch, true);
      } else {
        // Another master's epoch that does not continue what was delivered, or the middle of
        // an epoch whose start was missed: the history decides (gap fill, or events lost).
        seq.pending.push(event);
        void this.sync(userId, seq);
        return;
      }
    }
    if (compareStreamIds(event.id, seq.lastId) <= 0) return;
    if (event.offset === seq.offset + 1) {
      seq.offset = event.offset;
      seq.lastId = event.id;
      seq.seeking = false;
      void this.deliver([event.entry]);
      return;
    }
    seq.pending.push(event);
    void this.sync(userId, seq);
  }

  private startEpoch(seq: Sequence, epoch: string, seeking: boolean): void {
    seq.epoch = epoch;
    seq.offset = 0;
    seq.seeking = seeking;
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

  /** Judges the history's position against what was delivered, then reads what is new. */
  private async syncOnce(userId: string, seq: Sequence): Promise<void> {
    const position = await this.options.history.position(userId);
    let told = false;
    const tell = (reason: Break, history: { epoch: string; lastId: string }): void => {
      if (told) return;
      told = true;
      this.broke(userId, seq, reason, history);
    };
    if (position.epoch === '') {
      // No history (expired, or lost with its master): anything delivered is gone from it.
      if (seq.epoch !== '' && seq.offset > 0) tell('gone', position);
      seq.epoch = '';
      seq.offset = 0;
      seq.lastId = '0-0';
      seq.seeking = false;
      return;
    }
    if (position.epoch === seq.epoch) {
      const order = compareStreamIds(position.lastId, seq.lastId);
      if (!seq.seeking && (order < 0 || (order === 0 && position.offset !== seq.offset))) {
        // The history stands before what was delivered: the newer events are gone. Go on
        // from where the history stands (its next event follows it).
        tell('lost', position);
        seq.offset = position.offset;
        seq.lastId = position.lastId;
        return;
      }
      if (order <= 0) return;
    } else if (seq.epoch !== '') {
      const previous = position.previous;
      if (previous === undefined) {
        // A history that started over (expired, or lost entirely): read it from its start.
        tell('new_epoch', position);
        seq.lastId = '0-0';
        this.startEpoch(seq, position.epoch, true);
      } else if (previous.epoch === seq.epoch && !seq.seeking) {
        if (previous.offset < seq.offset || (previous.offset === seq.offset && previous.lastId !== seq.lastId)) {
          // A new master continued an older position of this epoch: what was delivered after
          // it is gone. Go on from there, so the new epoch continues it.
          tell('lost', { epoch: previous.epoch, lastId: previous.lastId });
          seq.offset = previous.offset;
          seq.lastId = previous.lastId;
        }
        // Otherwise the rest of this epoch is in the history, before the new one: read on.
      }
      // Else several epochs followed: reading on, each epoch's start decides.
    }
    await this.readOn(userId, seq, tell);
  }

  /** Reads and delivers the history after `seq.lastId`, following epochs from one to the next. */
  private async readOn(userId: string, seq: Sequence, tell: (reason: Break, history: { epoch: string; lastId: string }) => void): Promise<void> {
    for (;;) {
      const events = await this.options.history.eventsAfter(userId, seq.lastId, this.page);
      if (events.length === 0) break;
      let fresh: StreamEntry[] = [];
      const flush = async (): Promise<void> => {
        if (fresh.length > 0) await this.deliver(fresh);
        fresh = [];
      };
      for (const event of events) {
        const before = seq.lastId;
        seq.lastId = event.id;
        // An entry without a valid position (or another user's) only moves the cursor.
        if (event.epoch === '') continue;
        if (event.epoch !== seq.epoch) {
          if (seq.seeking && seq.epoch !== '') continue; // an older epoch's entry
          if (seq.epoch === '') {
            this.startEpoch(seq, event.epoch, false);
          } else if (continues(event.previous, { epoch: seq.epoch, offset: seq.offset, lastId: before })) {
            this.startEpoch(seq, event.epoch, false);
          } else {
            await flush();
            tell(event.previous === undefined ? 'new_epoch' : 'lost', { epoch: event.epoch, lastId: event.id });
            this.startEpoch(seq, event.epoch, false);
          }
        }
        seq.seeking = false;
        if (event.offset !== seq.offset + 1) {
          // Offsets written again (a restart lost delivered writes), or entries trimmed before
          // they were read: events are missing.
          await flush();
          tell(event.offset <= seq.offset ? 'lost' : 'gap', { epoch: event.epoch, lastId: event.id });
        }
        seq.offset = event.offset;
        fresh.push(event.entry);
      }
      await flush();
      if (events.length < this.page) break;
    }
  }

  /** Every stream of the user is told that continuity ended; logged, and counted when events were lost. */
  private broke(userId: string, seq: Sequence, reason: Break, history: { epoch: string; lastId: string }): void {
    const fields = {
      user_id: userId,
      reason,
      epoch: seq.epoch,
      last_delivered: seq.lastId,
      history_epoch: history.epoch,
      history_last_id: history.lastId,
    };
    const told = this.options.delivery.discontinuity(userId);
    if (reason === 'lost') {
      this.options.metrics?.streamHistoryDiverged.add(1, { stream: 'client_events' });
      if (told > 0) this.options.metrics?.pushLossNotices.add(told, { reason: 'history_diverged' });
      this.logger.error('user history lost delivered events (failover); streams told gateway.resume_incomplete', { ...fields, sessions_told: told });
    } else {
      this.logger.warn('user history continuity ended; streams told gateway.resume_incomplete', { ...fields, sessions_told: told });
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

/** True when `link` continues exactly the position `at` (nothing missing, nothing lost). */
function continues(link: EpochLink | undefined, at: { epoch: string; offset: number; lastId: string }): boolean {
  return link !== undefined && link.epoch === at.epoch && link.offset === at.offset && link.lastId === at.lastId;
}

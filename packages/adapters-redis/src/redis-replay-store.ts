import { GatewayMetrics, noopLogger, replayKey, systemClock, type Clock, type Logger, type ReplayReservation, type ReplayStore } from '@edge-gateway/core';
import { rewritePasses } from '@edge-gateway/core/internal';
import { backoffDelay } from './backoff.js';
import type { RawReply } from './redis-client.js';
import type { RedisCommands } from './redis-commands.js';
import type { ReplicatedWriter } from './replicated-writes.js';
import type { ReservationWrites } from './redis-rate-limiter.js';
import { DEFAULT_REPLAY_JOURNAL_MAX_ENTRIES, DEFAULT_REPLAY_JOURNAL_WINDOW_MS, ReservationJournal } from './reservation-journal.js';

/** Options of {@link RedisReplayStore}. */
export interface RedisReplayStoreOptions {
  /** `GATEWAY_REDIS_KEY_PREFIX` (e.g. `gateway:`). */
  keyPrefix: string;
  /**
   * `GATEWAY_REDIS_REPLAY_MIN_REPLICAS`: a reservation counts only once `WAIT` reports it on at
   * least this many replicas (default 0: no `WAIT`, the reservation counts once the master has it).
   */
  minReplicas?: number;
  /** `GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT` in ms (default {@link DEFAULT_REPLAY_WAIT_TIMEOUT_MS}). */
  waitTimeoutMs?: number;
  /** Dedicated connections per master for the `WAIT`s (default 2; for measurements). */
  waitConnectionsPerMaster?: number;
  /**
   * The journal of confirmed reservations (SPEC §5.2), re-written on a new master by
   * {@link RedisReplayStore.reassertRecent}: `GATEWAY_REDIS_REPLAY_REASSERT_WINDOW` in ms (default
   * 30 s) and `GATEWAY_REDIS_REPLAY_REASSERT_MAX_ENTRIES` (default 100,000); 0 switches it off.
   */
  journal?: { readonly windowMs?: number; readonly maxEntries?: number };
  clock?: Clock;
  metrics?: GatewayMetrics;
  logger?: Logger;
}

/** Re-assert writes in flight at most. */
const REASSERT_CONCURRENCY = 64;

/** Default `GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT`. */
export const DEFAULT_REPLAY_WAIT_TIMEOUT_MS = 50;

/** `SET NX` found the key: a replay, answered at once (nothing to wait for). */
const created = (reply: RawReply): boolean => reply !== null;

/**
 * Replay reservations shared by every gateway process on the same Redis (SPEC §5.2):
 * `SET P + "replay:" + ds + "/" + req 1 NX PX ttl` (`replayKey`: unambiguous for every pair of
 * valid ids). Rejects when the reservation cannot be confirmed, so the core fails closed.
 *
 * With `minReplicas` > 0 the `SET` goes through a {@link ReplicatedWriter} (dedicated
 * connections of the key's master, one `WAIT` per batch): a new reservation is `'reserved'`
 * only when `WAIT` reported at least `minReplicas` replicas within `waitTimeoutMs`; with fewer it
 * is deleted again (best effort, awaited, so a retry of the same request id is not taken for a
 * replay) and the outcome is `'not_replicated'`. A replay (`SET NX` found the key) is answered
 * at once.
 */
export class RedisReplayStore implements ReplayStore, ReservationWrites {
  private readonly writer: ReplicatedWriter | undefined;
  private readonly journal: ReservationJournal;
  private readonly clock: Clock;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private reasserting: Promise<void> | undefined;
  private reassertAgain: string | undefined;
  private closed = false;

  constructor(
    private readonly client: RedisCommands,
    private readonly options: RedisReplayStoreOptions,
  ) {
    const minReplicas = options.minReplicas ?? 0;
    if (!Number.isSafeInteger(minReplicas) || minReplicas < 0) throw new RangeError('minReplicas must be an integer >= 0');
    const waitTimeoutMs = options.waitTimeoutMs ?? DEFAULT_REPLAY_WAIT_TIMEOUT_MS;
    if (!(waitTimeoutMs >= 1)) throw new RangeError('waitTimeoutMs must be >= 1');
    this.journal = new ReservationJournal(options.journal?.windowMs ?? DEFAULT_REPLAY_JOURNAL_WINDOW_MS, options.journal?.maxEntries ?? DEFAULT_REPLAY_JOURNAL_MAX_ENTRIES);
    this.clock = options.clock ?? systemClock;
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = options.logger ?? noopLogger;
    this.writer =
      minReplicas === 0
        ? undefined
        : client.replicatedWriter({
            minReplicas,
            waitTimeoutMs: Math.ceil(waitTimeoutMs),
            ...(options.waitConnectionsPerMaster !== undefined ? { connectionsPerMaster: options.waitConnectionsPerMaster } : {}),
          });
  }

  /** Replicas a reservation needs (0: none, no `WAIT`). */
  get minReplicas(): number {
    return this.writer?.minReplicas ?? 0;
  }

  async reserve(deviceSessionId: string, requestId: string, ttlMs: number): Promise<ReplayReservation> {
    const key = this.key(deviceSessionId, requestId);
    // Confirmed here before: a replay, whatever a new master holds (it may have lost the key).
    if (this.journal.has(key, this.clock.now())) return 'duplicate';
    const px = Math.max(1, Math.ceil(ttlMs));
    const args = ['SET', key, '1', 'NX', 'PX', String(px)];
    if (this.writer === undefined) {
      if ((await this.client.command(args)) === null) return 'duplicate';
      this.remember(key, px);
      return 'reserved';
    }
    // A failed SET rejects here: it may or may not have run, and the key may be another
    // request's (never deleted then); the core answers `replay store unavailable`.
    const written = await this.writer.write(key, args, created);
    if (written.reply === null) return 'duplicate';
    if (written.waitError !== undefined) {
      // Our SET created the key (NX) but its WAIT failed: withdraw it so a retry is not a replay.
      await this.withdraw(key);
      throw written.waitError;
    }
    if ((written.replicas ?? 0) >= this.writer.minReplicas) {
      this.remember(key, px);
      return 'reserved';
    }
    await this.withdraw(key);
    return 'not_replicated';
  }

  /** Whether `key` is a reservation this process confirmed within the journal's window (a replay, without asking Redis). */
  journaled(key: string): boolean {
    return this.journal.has(key, this.clock.now());
  }

  /**
   * A write that may create the reservation `key` (the rate limiter's script, SPEC §5.2), sent the
   * way {@link reserve} sends its `SET`: with `minReplicas`, on the writer's connections and
   * counted only once `WAIT` confirmed it; a created reservation that `WAIT` did not confirm is
   * withdrawn (`durable: false`), one whose `WAIT` failed is withdrawn and the call rejects. A
   * reply that created nothing (`created` false: a refusal, a replay) needs no `WAIT`.
   */
  async writeReservation(key: string, args: readonly string[], created: (reply: RawReply) => boolean, ttlMs = 0): Promise<{ readonly reply: RawReply; readonly durable: boolean }> {
    if (this.writer === undefined) {
      const reply = await this.client.command(args);
      if (created(reply) && ttlMs > 0) this.remember(key, ttlMs);
      return { reply, durable: true };
    }
    const written = await this.writer.write(key, args, created);
    if (!created(written.reply)) return { reply: written.reply, durable: true };
    if (written.waitError !== undefined) {
      await this.withdraw(key);
      throw written.waitError;
    }
    if ((written.replicas ?? 0) >= this.writer.minReplicas) {
      if (ttlMs > 0) this.remember(key, ttlMs);
      return { reply: written.reply, durable: true };
    }
    await this.withdraw(key);
    return { reply: written.reply, durable: false };
  }

  async release(deviceSessionId: string, requestId: string): Promise<void> {
    const key = this.key(deviceSessionId, requestId);
    this.journal.delete(key);
    await this.client.command(['DEL', key]);
  }

  /** Forgets a journaled reservation that was withdrawn by its owner (the rate limiter's release). */
  forget(key: string): void {
    this.journal.delete(key);
  }

  /** Reservations the journal holds now. */
  get journalSize(): number {
    return this.journal.size;
  }

  /**
   * After a master change (SPEC §5.2): writes every reservation of the journal again on the
   * current master, `SET key 1 NX PX <time left>` (one the master still holds is left alone), so
   * a reservation the failover lost is a replay again for every gateway. Counted in
   * `gateway_replay_reservations_reasserted_total`, one warn line when any was missing. Writes
   * that fail (no master yet) are retried with backoff until they succeed, the entry leaves the
   * journal, or the store closes. A call while a round runs queues one more round. Resolves when
   * no round is running or queued.
   */
  reassertRecent(reason: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.reasserting !== undefined) {
      this.reassertAgain = reason;
      return this.reasserting;
    }
    const run = async (): Promise<void> => {
      let current: string | undefined = reason;
      while (current !== undefined && !this.closed) {
        this.reassertAgain = undefined;
        await this.reassertRound(current);
        current = this.reassertAgain;
      }
    };
    this.reasserting = run().finally(() => {
      this.reasserting = undefined;
    });
    return this.reasserting;
  }

  /** Closes the dedicated connections of the replicated writes (the shared client stays). */
  close(): void {
    this.closed = true;
    this.writer?.close();
  }

  /** `await using store = new RedisReplayStore(…)`: {@link RedisReplayStore.close} at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private async reassertRound(reason: string): Promise<void> {
    const started = this.clock.now();
    const items = this.journal.list(started);
    const { written, unfinished, error } = await rewritePasses({
      items,
      concurrency: REASSERT_CONCURRENCY,
      stopped: () => this.closed,
      // Expired, or withdrawn meanwhile: nothing to write.
      wanted: (entry) => entry.expiresAtMs - this.clock.now() > 0 && this.journal.has(entry.key, this.clock.now()),
      write: async (entry) => {
        const left = Math.max(1, Math.ceil(entry.expiresAtMs - this.clock.now()));
        return (await this.client.command(['SET', entry.key, '1', 'NX', 'PX', String(left)])) !== null;
      },
      retryAfter: async (attempt) => {
        await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, { minDelayMs: 100, maxDelayMs: 2000 })));
        return true;
      },
    });
    if (written > 0) this.metrics.replayReservationsReasserted.add(written);
    const fields = {
      reason,
      checked: items.length,
      count: written,
      duration_ms: this.clock.now() - started,
      ...(unfinished.length > 0 ? { unfinished: unfinished.length, error: String(error) } : {}),
    };
    if (written > 0) this.logger.warn('replay reservations re-asserted: the master lacked them (lost in a failover)', fields);
    else this.logger.info('replay reservations checked on the new master: none lost', fields);
  }

  private remember(key: string, ttlMs: number): void {
    const now = this.clock.now();
    this.journal.add(key, now + ttlMs, now);
  }

  /** Best effort: a reservation that stays only expires (the request id is then refused as a replay until it does). */
  private async withdraw(key: string): Promise<void> {
    try {
      await this.client.command(['DEL', key]);
    } catch {
      // Fail closed: the reservation stays until its TTL.
    }
  }

  private key(deviceSessionId: string, requestId: string): string {
    return `${this.options.keyPrefix}replay:${replayKey(deviceSessionId, requestId)}`;
  }
}

import { replayKey, type ReplayReservation, type ReplayStore } from '@edge-gateway/core';
import type { RawReply } from './redis-client.js';
import type { RedisCommands } from './redis-commands.js';
import type { ReplicatedWriter } from './replicated-writes.js';
import type { ReservationWrites } from './redis-rate-limiter.js';

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
}

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

  constructor(
    private readonly client: RedisCommands,
    private readonly options: RedisReplayStoreOptions,
  ) {
    const minReplicas = options.minReplicas ?? 0;
    if (!Number.isSafeInteger(minReplicas) || minReplicas < 0) throw new RangeError('minReplicas must be an integer >= 0');
    const waitTimeoutMs = options.waitTimeoutMs ?? DEFAULT_REPLAY_WAIT_TIMEOUT_MS;
    if (!(waitTimeoutMs >= 1)) throw new RangeError('waitTimeoutMs must be >= 1');
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
    const args = ['SET', key, '1', 'NX', 'PX', String(Math.max(1, Math.ceil(ttlMs)))];
    if (this.writer === undefined) return (await this.client.command(args)) === null ? 'duplicate' : 'reserved';
    // A failed SET rejects here: it may or may not have run, and the key may be another
    // request's (never deleted then); the core answers `replay store unavailable`.
    const written = await this.writer.write(key, args, created);
    if (written.reply === null) return 'duplicate';
    if (written.waitError !== undefined) {
      // Our SET created the key (NX) but its WAIT failed: withdraw it so a retry is not a replay.
      await this.withdraw(key);
      throw written.waitError;
    }
    if ((written.replicas ?? 0) >= this.writer.minReplicas) return 'reserved';
    await this.withdraw(key);
    return 'not_replicated';
  }

  /**
   * A write that may create the reservation `key` (the rate limiter's script, SPEC §5.2), sent the
   * way {@link reserve} sends its `SET`: with `minReplicas`, on the writer's connections and
   * counted only once `WAIT` confirmed it; a created reservation that `WAIT` did not confirm is
   * withdrawn (`durable: false`), one whose `WAIT` failed is withdrawn and the call rejects. A
   * reply that created nothing (`created` false: a refusal, a replay) needs no `WAIT`.
   */
  async writeReservation(key: string, args: readonly string[], created: (reply: RawReply) => boolean): Promise<{ readonly reply: RawReply; readonly durable: boolean }> {
    if (this.writer === undefined) return { reply: await this.client.command(args), durable: true };
    const written = await this.writer.write(key, args, created);
    if (!created(written.reply)) return { reply: written.reply, durable: true };
    if (written.waitError !== undefined) {
      await this.withdraw(key);
      throw written.waitError;
    }
    if ((written.replicas ?? 0) >= this.writer.minReplicas) return { reply: written.reply, durable: true };
    await this.withdraw(key);
    return { reply: written.reply, durable: false };
  }

  async release(deviceSessionId: string, requestId: string): Promise<void> {
    await this.client.command(['DEL', this.key(deviceSessionId, requestId)]);
  }

  /** Closes the dedicated connections of the replicated writes (the shared client stays). */
  close(): void {
    this.writer?.close();
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

import { replayKey, type ReplayReservation, type ReplayStore } from '@edge-gateway/core';
import type { RedisCommands } from './redis-commands.js';

/** Options of {@link RedisReplayStore}. */
export interface RedisReplayStoreOptions {
  /** `GATEWAY_REDIS_KEY_PREFIX` (e.g. `gateway:`). */
  keyPrefix: string;
}

/**
 * Replay reservations shared by every gateway process on the same Redis (SPEC §5.2):
 * `SET P + "replay:" + ds + "/" + req 1 NX PX ttl` (`replayKey`: unambiguous for every pair of
 * valid ids). Rejects when the reservation cannot be confirmed, so the core fails closed.
 */
export class RedisReplayStore implements ReplayStore {
  constructor(
    private readonly client: RedisCommands,
    private readonly options: RedisReplayStoreOptions,
  ) {}

  async reserve(deviceSessionId: string, requestId: string, ttlMs: number): Promise<ReplayReservation> {
    const reply = await this.client.command(['SET', this.key(deviceSessionId, requestId), '1', 'NX', 'PX', String(Math.max(1, Math.ceil(ttlMs)))]);
    return reply === null ? 'duplicate' : 'reserved';
  }

  async release(deviceSessionId: string, requestId: string): Promise<void> {
    await this.client.command(['DEL', this.key(deviceSessionId, requestId)]);
  }

  private key(deviceSessionId: string, requestId: string): string {
    return `${this.options.keyPrefix}replay:${replayKey(deviceSessionId, requestId)}`;
  }
}

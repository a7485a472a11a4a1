import type { RawFields, SessionStore } from '@edge-gateway/core';
import type { RawReply, RedisClient } from './redis-client.js';

/** Options of {@link RedisSessionStore}. */
export interface RedisSessionStoreOptions {
  /** `GATEWAY_REDIS_KEY_PREFIX` (e.g. `gateway:`). */
  keyPrefix: string;
}

/** Converts a flat `[field, value, ...]` RESP2 reply into a record. */
export function flatToRecord(reply: RawReply): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

/**
 * Reads device-session records `P + "session:" + id` (SPEC §5.1) with `HGETALL` on the shared
 * client; an empty hash means no record. Rejects within the command timeout when Redis cannot
 * answer.
 */
export class RedisSessionStore implements SessionStore {
  constructor(
    private readonly client: RedisClient,
    private readonly options: RedisSessionStoreOptions,
  ) {}

  async getRecord(deviceSessionId: string): Promise<RawFields | undefined> {
    const reply = await this.client.command(['HGETALL', `${this.options.keyPrefix}session:${deviceSessionId}`]);
    const record = flatToRecord(reply);
    return Object.keys(record).length === 0 ? undefined : record;
  }
}

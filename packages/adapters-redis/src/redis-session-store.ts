import type { RawFields, SessionStore } from '@edge-gateway/core';
import type { RawReply } from './redis-client.js';
import type { RedisCommands } from './redis-commands.js';

/** Options of {@link RedisSessionStore}. */
export interface RedisSessionStoreOptions {
  /** `GATEWAY_REDIS_KEY_PREFIX` (e.g. `gateway:`). */
  keyPrefix: string;
  /**
   * `GATEWAY_REDIS_SESSION_READS=replica`: the connected replicas to try first (e.g.
   * `() => topology.replicas()`). A lookup that finds no record there, or fails, is retried on
   * the master before it counts as unknown. Absent: lookups go to the master only.
   */
  replicas?: () => readonly RedisCommands[];
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
 * answer. With replica reads, a replica answers first; "no record" (a replica may not have
 * received a new session yet) and replica errors fall back to the master.
 */
export class RedisSessionStore implements SessionStore {
  constructor(
    private readonly client: RedisCommands,
    private readonly options: RedisSessionStoreOptions,
  ) {}

  async getRecord(deviceSessionId: string): Promise<RawFields | undefined> {
    const key = `${this.options.keyPrefix}session:${deviceSessionId}`;
    const replica = this.options.replicas?.()[0];
    if (replica !== undefined) {
      try {
        const record = toRecord(await replica.command(['HGETALL', key]));
        if (record !== undefined) return record;
      } catch {
        // The master answers instead.
      }
    }
    return toRecord(await this.client.command(['HGETALL', key]));
  }
}

function toRecord(reply: RawReply): RawFields | undefined {
  const record = flatToRecord(reply);
  return Object.keys(record).length === 0 ? undefined : record;
}

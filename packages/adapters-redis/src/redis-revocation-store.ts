import { createHash } from 'node:crypto';
import type { ReassertOutcome, RevocationStore, RevocationToReassert } from '@edge-gateway/core';
import { describeRedisError } from './redis-client.js';
import type { RedisCommands } from './redis-commands.js';
import { flatToRecord } from './redis-session-store.js';

/** Options of {@link RedisRevocationStore}. */
export interface RedisRevocationStoreOptions {
  /** `GATEWAY_REDIS_KEY_PREFIX` (e.g. `gateway:`): records are `P + "session:" + id`. */
  keyPrefix: string;
  /** `GATEWAY_SESSION_EVENTS_REDIS_STREAM`, where the snapshot is appended. */
  streamKey: string;
}

/** The record fields of SPEC §5.1, the ones a snapshot carries (SPEC §5.3). */
const SNAPSHOT_FIELDS = ['device_session_id', 'user_id', 'status', 'client_public_key', 'revoked_at_ms'] as const;

/**
 * The check and the record write in one step: of several gateways re-asserting at once, one
 * writes. KEYS[1] the record; ARGV: ttl ms (0: none), device_session_id, revoked_at_ms,
 * user_id, client_public_key (empty: unknown). Nil when the record already says revoked, else
 * the record as written (HGETALL).
 */
const REASSERT_SCRIPT = `
local key = KEYS[1]
if redis.call('HGET', key, 'status') == 'revoked' then return false end
local existed = redis.call('EXISTS', key)
redis.call('HSET', key, 'device_session_id', ARGV[2], 'status', 'revoked', 'revoked_at_ms', ARGV[3])
local user = redis.call('HGET', key, 'user_id')
if ARGV[4] ~= '' and (not user or user == '') then redis.call('HSET', key, 'user_id', ARGV[4]) end
local pk = redis.call('HGET', key, 'client_public_key')
if ARGV[5] ~= '' and (not pk or pk == '') then redis.call('HSET', key, 'client_public_key', ARGV[5]) end
if existed == 0 and tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', key, ARGV[1]) end
return redis.call('HGETALL', key)
`;
const REASSERT_SHA = createHash('sha1').update(REASSERT_SCRIPT).digest('hex');

/**
 * Writes back revocations a failover lost (SPEC §5.3), on the master (in a cluster, on the
 * masters of the record's and the stream's slots): one script checks the record and, unless it
 * already says `revoked`, writes it (HSET of the §5.1 hash; a record it creates gets the
 * original's remaining life when known); then the revoked snapshot, built from the record, is
 * appended with `XADD`. A snapshot whose `XADD` failed is appended on the next call for the
 * session even though the record is then already revoked.
 */
export class RedisRevocationStore implements RevocationStore {
  /** Sessions whose record was written but whose snapshot append failed. */
  private readonly snapshotOwed = new Set<string>();

  constructor(
    private readonly client: RedisCommands,
    private readonly options: RedisRevocationStoreOptions,
  ) {}

  async recordTtl(deviceSessionId: string): Promise<number | undefined> {
    const ttl = Number(await this.client.command(['PTTL', this.recordKey(deviceSessionId)]));
    if (ttl === -2) return undefined;
    return ttl < 0 ? Infinity : ttl;
  }

  async reassert(revocation: RevocationToReassert): Promise<ReassertOutcome> {
    const id = revocation.deviceSessionId;
    const key = this.recordKey(id);
    const args = ['1', key, String(revocation.recordTtlMs ?? 0), id, String(revocation.revokedAtMs), revocation.userId, revocation.clientPublicKey];
    let reply;
    try {
      // The script by its digest (a new master after a failover may not have it cached yet).
      reply = await this.client.command(['EVALSHA', REASSERT_SHA, ...args]);
    } catch (error) {
      if (!/NOSCRIPT/.test(describeRedisError(error))) throw error;
      reply = await this.client.command(['EVAL', REASSERT_SCRIPT, ...args]);
    }
    let record: Record<string, string>;
    if (reply === null) {
      if (!this.snapshotOwed.has(id)) return 'present';
      record = flatToRecord(await this.client.command(['HGETALL', key]));
    } else {
      record = flatToRecord(reply);
    }
    const snapshot: string[] = [];
    for (const name of SNAPSHOT_FIELDS) {
      const value = record[name];
      if (value !== undefined) snapshot.push(name, value);
    }
    try {
      await this.client.command(['XADD', this.options.streamKey, '*', ...snapshot]);
    } catch (error) {
      this.snapshotOwed.add(id);
      throw error;
    }
    this.snapshotOwed.delete(id);
    return 'written';
  }

  private recordKey(deviceSessionId: string): string {
    return `${this.options.keyPrefix}session:${deviceSessionId}`;
  }
}

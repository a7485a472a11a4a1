/**
 * Example: the auth service's side of the gateway contract (SPEC §5.1, §5.3).
 *
 * After a device signs in (the gateway relays `POST /api/v1/public/auth/confirm-email-code`
 * with the device's `client_public_key` to your auth service), the auth service owns the
 * device session: it writes the session record, then appends the matching snapshot to the
 * session-events stream, in that order. Revoking is the same two writes with
 * `status=revoked`: every gateway then closes the session's push streams and refuses its
 * requests with FAILED_PRECONDITION "device session is revoked".
 *
 * Both then wait for a replica (`WAIT 1 <ms>` on the same connection, SPEC §5.1): Redis
 * replicates asynchronously, so a write only the master holds is lost if it fails over (a new
 * session would be unknown, a revocation undone until the gateways that saw it write it back).
 * `replicas` in the output is how many acknowledged; 0: retry or alert.
 *
 *   node examples/dist/device-sessions.js create <user_id> <client_public_key_base64>
 *   node examples/dist/device-sessions.js revoke <device_session_id>
 *
 * Environment: REDIS_URL (redis://:password@host:port/db), and optionally KEY_PREFIX
 * (the gateway's GATEWAY_REDIS_KEY_PREFIX, default "gateway:") and SESSION_EVENTS_STREAM
 * (GATEWAY_SESSION_EVENTS_REDIS_STREAM, default "gateway:session-events") and WAIT_MS (how
 * long to wait for a replica, default 1000; 0: do not wait, e.g. a lone master).
 */
import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { isMain, requireEnv } from './run-main.js';

/** The two Redis names the gateway is configured with. */
export interface SessionStoreNames {
  readonly keyPrefix: string;
  readonly sessionEventsStream: string;
}

export const DEFAULT_NAMES: SessionStoreNames = { keyPrefix: 'gateway:', sessionEventsStream: 'gateway:session-events' };

/** The commands this example needs, so any node-redis client (or a cluster client) fits. */
export interface SessionRedis {
  hSet(key: string, fields: Record<string, string>): Promise<number>;
  hGetAll(key: string): Promise<Record<string, string>>;
  xAdd(key: string, id: string, fields: Record<string, string>): Promise<string>;
  sendCommand(args: string[]): Promise<unknown>;
}

/**
 * `WAIT 1 <waitMs>` after the writes, on the same connection (it covers every earlier write of
 * the connection): how many replicas acknowledged; `undefined` when `waitMs` is 0 (not asked).
 */
export async function waitForReplica(redis: SessionRedis, waitMs: number): Promise<number | undefined> {
  if (waitMs <= 0) return undefined;
  return Number(await redis.sendCommand(['WAIT', '1', String(waitMs)]));
}

/** A new device session, as the auth service returns it to the device. */
export interface CreatedSession {
  readonly deviceSessionId: string;
  readonly userId: string;
  /** Entry id of the active snapshot in the session-events stream. */
  readonly snapshotId: string;
  /** Replicas that acknowledged record and snapshot (`undefined`: not waited for). */
  readonly replicas: number | undefined;
}

/**
 * Creates an active device session for `userId` with the device's raw Ed25519 public key
 * (standard base64 of 32 bytes): the record first, then the snapshot.
 */
export async function createDeviceSession(
  redis: SessionRedis,
  userId: string,
  clientPublicKeyBase64: string,
  names: SessionStoreNames = DEFAULT_NAMES,
  waitMs = 1000,
): Promise<CreatedSession> {
  // user_id: the same id rule (SPEC §5.1); the gateway treats any other record as malformed.
  // eslint-disable-next-line no-control-regex
  if (userId.length < 1 || userId.length > 256 || /[\u0000-\u001f\u007f]/.test(userId)) throw new Error('user_id must be 1-256 characters with no control characters');
  if (Buffer.from(clientPublicKeyBase64, 'base64').length !== 32) throw new Error('client_public_key must be base64 of 32 bytes');
  // device_session_id: 1-128 characters of [A-Za-z0-9._:-] (SPEC §2.1).
  const deviceSessionId = `ds-${randomUUID()}`;
  const record = { device_session_id: deviceSessionId, user_id: userId, status: 'active', client_public_key: clientPublicKeyBase64 };
  // Record first: a gateway that misses the snapshot (or restarts) reads the record instead.
  await redis.hSet(`${names.keyPrefix}session:${deviceSessionId}`, record);
  const snapshotId = await redis.xAdd(names.sessionEventsStream, '*', record);
  return { deviceSessionId, userId, snapshotId, replicas: await waitForReplica(redis, waitMs) };
}

/**
 * Revokes a device session: record to `status=revoked` (with `revoked_at_ms`), then the
 * complete revoked snapshot, then waits for a replica. Returns the snapshot's entry id and the
 * replicas that acknowledged, or `undefined` without a record.
 */
export async function revokeDeviceSession(
  redis: SessionRedis,
  deviceSessionId: string,
  names: SessionStoreNames = DEFAULT_NAMES,
  waitMs = 1000,
): Promise<{ snapshotId: string; replicas: number | undefined } | undefined> {
  const key = `${names.keyPrefix}session:${deviceSessionId}`;
  const record = await redis.hGetAll(key);
  if (record['device_session_id'] === undefined) return undefined;
  const revoked = { ...record, status: 'revoked', revoked_at_ms: String(Date.now()) };
  await redis.hSet(key, { status: 'revoked', revoked_at_ms: revoked.revoked_at_ms });
  const snapshotId = await redis.xAdd(names.sessionEventsStream, '*', revoked);
  return { snapshotId, replicas: await waitForReplica(redis, waitMs) };
}

if (isMain(import.meta.url)) {
  const [action, first, second] = process.argv.slice(2);
  const redis = createClient({ url: requireEnv('REDIS_URL') });
  await redis.connect();
  const names = {
    keyPrefix: process.env['KEY_PREFIX'] ?? DEFAULT_NAMES.keyPrefix,
    sessionEventsStream: process.env['SESSION_EVENTS_STREAM'] ?? DEFAULT_NAMES.sessionEventsStream,
  };
  const waitMs = Number(process.env['WAIT_MS'] ?? 1000);
  try {
    if (action === 'create' && first !== undefined && second !== undefined) {
      const session = await createDeviceSession(redis, first, second, names, waitMs);
      process.stdout.write(`${JSON.stringify(session)}\n`);
    } else if (action === 'revoke' && first !== undefined) {
      const revoked = await revokeDeviceSession(redis, first, names, waitMs);
      if (revoked === undefined) {
        process.stderr.write(`no session record for ${first}\n`);
        process.exitCode = 1;
      } else {
        process.stdout.write(`${JSON.stringify({ deviceSessionId: first, status: 'revoked', ...revoked })}\n`);
      }
    } else {
      process.stderr.write('usage: device-sessions.js create <user_id> <client_public_key_base64> | revoke <device_session_id>\n');
      process.exitCode = 2;
    }
  } finally {
    await redis.quit();
  }
}

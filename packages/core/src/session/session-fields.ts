import type { DeviceSession, RawFields, SessionStatus } from '../domain.js';
import { isStandardBase64 } from '../encoding/base64.js';
import { isSmallOrderEd25519Key } from '../signing/keys.js';
import { isValidId, isValidUserId } from '../validation.js';

/** Result of parsing a session record or snapshot: the session, or why it is malformed. */
export type ParsedSession = { ok: true; session: DeviceSession } | { ok: false; reason: string };

/** Parses the fields of SPEC §5.1 (record hash or session snapshot). */
export function parseSessionFields(fields: RawFields): ParsedSession {
  const { device_session_id: id, user_id: userId, status, client_public_key: key, revoked_at_ms: revokedAt } = fields;
  if (id === undefined || id === '') return { ok: false, reason: 'device_session_id is missing' };
  if (!isValidId(id)) return { ok: false, reason: 'device_session_id is invalid' };
  if (userId === undefined || userId === '') return { ok: false, reason: 'user_id is missing' };
  // The §2.1 id rule, as device_session_id: a record must not make the cache, the hub's
  // indexes and every log line of the session hold an unbounded string.
  if (!isValidUserId(userId)) return { ok: false, reason: 'user_id is invalid' };
  if (status === undefined || status === '') return { ok: false, reason: 'status is missing' };
  if (status !== 'active' && status !== 'revoked') return { ok: false, reason: 'status is unknown' };
  if (key === undefined || key === '') return { ok: false, reason: 'client_public_key is missing' };
  if (!isStandardBase64(key)) return { ok: false, reason: 'client_public_key is not standard base64' };
  const raw = Buffer.from(key, 'base64');
  if (raw.length !== 32) return { ok: false, reason: 'client_public_key is not 32 bytes' };
  if (isSmallOrderEd25519Key(raw)) return { ok: false, reason: 'client_public_key is a small-order point' };
  let revokedAtMs: number | undefined;
  if (revokedAt !== undefined && revokedAt !== '') {
    if (!/^\d{1,16}$/.test(revokedAt)) return { ok: false, reason: 'revoked_at_ms is not an integer' };
    revokedAtMs = Number(revokedAt);
  }
  const session: DeviceSession = {
    deviceSessionId: id,
    userId,
    status: status satisfies SessionStatus,
    clientPublicKey: new Uint8Array(raw),
    ...(revokedAtMs === undefined ? {} : { revokedAtMs }),
  };
  return { ok: true, session };
}

/** The part of a snapshot that revokes: enough to fail closed when the rest is malformed. */
export interface Revocation {
  readonly deviceSessionId: string;
  /** Empty when the snapshot's `user_id` is missing or invalid (never an unbounded string). */
  readonly userId: string;
}

/**
 * A snapshot with a valid `device_session_id` and `status=revoked` revokes, whatever its other
 * fields hold (fail closed, issue 12); `undefined` for anything else.
 */
export function parseRevocation(fields: RawFields): Revocation | undefined {
  const { device_session_id: id, user_id: userId, status } = fields;
  if (status !== 'revoked' || id === undefined || !isValidId(id)) return undefined;
  return { deviceSessionId: id, userId: typeof userId === 'string' && isValidUserId(userId) ? userId : '' };
}

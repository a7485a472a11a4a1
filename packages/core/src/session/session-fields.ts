import type { DeviceSession, RawFields, SessionStatus } from '../domain.js';
import { isValidId } from '../validation.js';

/** Result of parsing a session record or snapshot: the session, or why it is malformed. */
export type ParsedSession = { ok: true; session: DeviceSession } | { ok: false; reason: string };

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** True for standard (padded) base64. */
export function isStandardBase64(value: string): boolean {
  return value.length % 4 === 0 && BASE64.test(value);
}

/** Parses the fields of SPEC §5.1 (record hash or session snapshot). */
export function parseSessionFields(fields: RawFields): ParsedSession {
  const { device_session_id: id, user_id: userId, status, client_public_key: key, revoked_at_ms: revokedAt } = fields;
  if (id === undefined || id === '') return { ok: false, reason: 'device_session_id is missing' };
  if (!isValidId(id)) return { ok: false, reason: 'device_session_id is invalid' };
  if (userId === undefined || userId === '') return { ok: false, reason: 'user_id is missing' };
  if (status === undefined || status === '') return { ok: false, reason: 'status is missing' };
  if (status !== 'active' && status !== 'revoked') return { ok: false, reason: 'status is unknown' };
  if (key === undefined || key === '') return { ok: false, reason: 'client_public_key is missing' };
  if (!isStandardBase64(key)) return { ok: false, reason: 'client_public_key is not standard base64' };
  const raw = Buffer.from(key, 'base64');
  if (raw.length !== 32) return { ok: false, reason: 'client_public_key is not 32 bytes' };
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

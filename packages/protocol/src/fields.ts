import { toBase64 } from './base64.js';

/**
 * Builders of the Redis field sets of SPEC §5 (the inverses of the core's parsers), for
 * auth services, event publishers, tools and tests.
 */

/** A device session as its record (SPEC §5.1) describes it. */
export interface SessionRecordInput {
  readonly deviceSessionId: string;
  readonly userId: string;
  readonly status: 'active' | 'revoked';
  /** Raw 32-byte Ed25519 public key of the device. */
  readonly clientPublicKey: Uint8Array;
  /** Set for a revoked session (epoch ms). */
  readonly revokedAtMs?: number;
}

/** The fields of a session record hash and of its session-events snapshot (SPEC §5.1, §5.3). */
export function sessionRecordFields(session: SessionRecordInput): Record<string, string> {
  return {
    device_session_id: session.deviceSessionId,
    user_id: session.userId,
    status: session.status,
    client_public_key: toBase64(session.clientPublicKey),
    ...(session.revokedAtMs === undefined ? {} : { revoked_at_ms: String(session.revokedAtMs) }),
  };
}

/** One client event as a publisher writes it. */
export interface ClientEventInput {
  readonly userId: string;
  readonly eventType: string;
  readonly payload: Uint8Array;
  /** Only this device session receives it; omitted: every stream of the user. */
  readonly deviceSessionId?: string;
}

/** The fields of one client-events stream entry (SPEC §5.4). */
export function clientEventFields(event: ClientEventInput): Record<string, string> {
  // Field order as publishers and the CLI have always written it (tools print entries in order).
  return {
    user_id: event.userId,
    ...(event.deviceSessionId === undefined || event.deviceSessionId === '' ? {} : { device_session_id: event.deviceSessionId }),
    event_type: event.eventType,
    payload_base64: toBase64(event.payload),
  };
}

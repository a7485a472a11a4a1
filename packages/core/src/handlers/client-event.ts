import type { StreamEntry, UnsignedEvent } from '../domain.js';
import { isStandardBase64 } from '../session/session-fields.js';
import { isStreamId, isValidType } from '../validation.js';

export type ParsedClientEvent = { ok: true; event: UnsignedEvent } | { ok: false; reason: string };

/** Parses and validates one client-events stream entry (SPEC §5.4). */
export function parseClientEvent(entry: StreamEntry): ParsedClientEvent {
  const { user_id: userId, device_session_id: sessionId, event_type: eventType, payload_base64: payload } = entry.fields;
  if (!isStreamId(entry.id)) return { ok: false, reason: 'entry id is not a stream id' };
  if (userId === undefined || userId === '') return { ok: false, reason: 'user_id is missing' };
  if (eventType === undefined || eventType === '') return { ok: false, reason: 'event_type is missing' };
  if (!isValidType(eventType)) return { ok: false, reason: 'event_type is invalid' };
  if (eventType.startsWith('gateway.')) return { ok: false, reason: 'event_type uses the reserved gateway. prefix' };
  if (payload === undefined) return { ok: false, reason: 'payload_base64 is missing' };
  if (!isStandardBase64(payload)) return { ok: false, reason: 'payload_base64 is not standard base64' };
  return {
    ok: true,
    event: {
      eventId: entry.id,
      eventType,
      userId,
      deviceSessionId: sessionId ?? '',
      timestampMs: Number(entry.id.slice(0, entry.id.indexOf('-'))),
      payload: Buffer.from(payload, 'base64'),
    },
  };
}

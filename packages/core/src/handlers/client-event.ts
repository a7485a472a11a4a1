import type { StreamEntry, UnsignedEvent } from '../domain.js';
import { base64DecodedLength, isStandardBase64 } from '../encoding/base64.js';
import { isStreamId, isValidType, isValidUserId } from '../validation.js';

export type ParsedClientEvent = { ok: true; event: UnsignedEvent } | { ok: false; reason: string };

/** `GATEWAY_PUSH_MAX_EVENT_BYTES` default: the largest decoded payload of a client event (1 MiB). */
export const DEFAULT_PUSH_MAX_EVENT_BYTES = 1024 * 1024;

/** Options of {@link parseClientEvent}. */
export interface ClientEventLimits {
  /** Largest decoded payload (`GATEWAY_PUSH_MAX_EVENT_BYTES`); default {@link DEFAULT_PUSH_MAX_EVENT_BYTES}. */
  readonly maxEventBytes?: number;
}

/** Drop reasons of client-events entries that are not about one field's shape. */
export const ClientEventReasons = {
  tooLarge: 'payload exceeds GATEWAY_PUSH_MAX_EVENT_BYTES',
  /** Anything unexpected while parsing: the entry is dropped alone (issue 12). */
  unparseable: (error: unknown) => `entry could not be parsed (${error instanceof Error ? error.name : typeof error})`,
} as const;

/**
 * Parses and validates one client-events stream entry (SPEC §5.4). Never throws: an entry
 * that cannot be parsed for any reason is reported malformed, so it is dropped alone. Costs
 * one pass over the payload text and allocates only for an accepted payload.
 */
export function parseClientEvent(entry: StreamEntry, limits: ClientEventLimits = {}): ParsedClientEvent {
  try {
    return parse(entry, limits.maxEventBytes ?? DEFAULT_PUSH_MAX_EVENT_BYTES);
  } catch (error) {
    return { ok: false, reason: ClientEventReasons.unparseable(error) };
  }
}

function parse(entry: StreamEntry, maxEventBytes: number): ParsedClientEvent {
  const { user_id: userId, device_session_id: sessionId, event_type: eventType, payload_base64: payload } = entry.fields;
  if (!isStreamId(entry.id)) return { ok: false, reason: 'entry id is not a stream id' };
  if (userId === undefined || userId === '') return { ok: false, reason: 'user_id is missing' };
  // Session records hold only such user_ids (§5.1): any other could reach no stream.
  if (!isValidUserId(userId)) return { ok: false, reason: 'user_id is invalid' };
  if (eventType === undefined || eventType === '') return { ok: false, reason: 'event_type is missing' };
  if (!isValidType(eventType)) return { ok: false, reason: 'event_type is invalid' };
  if (eventType.startsWith('gateway.')) return { ok: false, reason: 'event_type uses the reserved gateway. prefix' };
  if (payload === undefined) return { ok: false, reason: 'payload_base64 is missing' };
  if (!isStandardBase64(payload)) return { ok: false, reason: 'payload_base64 is not standard base64' };
  // Checked before decoding, so an oversized payload never costs an allocation.
  if (base64DecodedLength(payload) > maxEventBytes) return { ok: false, reason: ClientEventReasons.tooLarge };
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

import { GatewayError } from './errors.js';
import type { CommandRequest, SubscribeRequest } from './domain.js';

const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const TYPE_PATTERN = /^[a-z][a-z0-9._-]{0,127}$/;
const STREAM_ID_PATTERN = /^\d{1,20}-\d{1,20}$/;

/** Reasons used in `<field>: <reason>` messages (SPEC §2.2). */
export const FieldReasons = {
  id: 'must be 1-128 characters of [A-Za-z0-9._:-]',
  type: 'must be 1-128 characters of [a-z0-9._-] starting with a letter',
  signature: 'must be exactly 64 bytes',
  payload: (max: number) => `must be at most ${max} bytes`,
  streamId: 'must be empty or a stream id <ms>-<seq>',
} as const;

export function isValidId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/** Longest `user_id` (characters) in a session record, snapshot or client event. */
export const USER_ID_MAX_CHARS = 256;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * The `user_id` rule (SPEC §5.1): 1–256 characters, no control characters. User ids come from
 * the operator's auth service (an email address, a UUID, …), so any other character is kept.
 */
export function isValidUserId(value: string): boolean {
  return value.length >= 1 && value.length <= USER_ID_MAX_CHARS && !CONTROL_CHARACTER.test(value);
}

export function isValidType(value: string): boolean {
  return TYPE_PATTERN.test(value);
}

/** True for a Redis stream id `<ms>-<seq>`. */
export function isStreamId(value: string): boolean {
  return STREAM_ID_PATTERN.test(value);
}

function fail(field: string, reason: string): never {
  throw GatewayError.invalidArgument(`${field}: ${reason}`);
}

function checkId(field: string, value: string): void {
  if (!isValidId(value)) fail(field, FieldReasons.id);
}

function checkSignature(signature: Uint8Array): void {
  if (signature.length !== 64) fail('signature', FieldReasons.signature);
}

/** Field rules of SPEC §2.2 for ExecuteCommand; throws `INVALID_ARGUMENT` naming the field. */
export function validateCommandRequest(request: CommandRequest, maxPayloadBytes: number): void {
  checkId('device_session_id', request.deviceSessionId);
  if (!isValidType(request.messageType)) fail('message_type', FieldReasons.type);
  checkId('request_id', request.requestId);
  if (request.payload.length > maxPayloadBytes) fail('payload', FieldReasons.payload(maxPayloadBytes));
  checkSignature(request.signature);
}

/** Field rules of SPEC §2.2 for SubscribeEvents; throws `INVALID_ARGUMENT` naming the field. */
export function validateSubscribeRequest(request: SubscribeRequest): void {
  checkId('device_session_id', request.deviceSessionId);
  checkId('request_id', request.requestId);
  if (request.resumeAfterEventId !== '' && !isStreamId(request.resumeAfterEventId)) {
    fail('resume_after_event_id', FieldReasons.streamId);
  }
  checkSignature(request.signature);
}

/** Compares two stream ids `<ms>-<seq>` numerically. */
export function compareStreamIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

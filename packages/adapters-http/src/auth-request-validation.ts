import { isSmallOrderEd25519Key, type ConfirmEmailCodeRequest, type SendEmailCodeRequest } from '@edge-gateway/core';
import { HttpError, HttpErrorCode } from './error-envelope.js';

/** Length of a standard, padded base64 encoding of 32 bytes. */
const PUBLIC_KEY_BASE64_LENGTH = 44;
const PUBLIC_KEY_BYTES = 32;

function invalid(message: string): never {
  throw new HttpError(HttpErrorCode.InvalidRequest, message);
}

function asObject(body: unknown): Record<string, unknown> {
  if (body === undefined) invalid('body: required JSON object');
  if (body === null || typeof body !== 'object' || Array.isArray(body)) invalid('body: must be a JSON object');
  return body as Record<string, unknown>;
}

function requireString(body: Record<string, unknown>, field: string): string {
  const value = Object.hasOwn(body, field) ? body[field] : undefined;
  if (typeof value !== 'string') invalid(`${field}: required string`);
  if (value.length === 0) invalid(`${field}: must not be empty`);
  return value;
}

/** True when `value` is the canonical standard (padded, `+/`) base64 of exactly 32 bytes. */
export function isBase64PublicKey(value: string): boolean {
  if (value.length !== PUBLIC_KEY_BASE64_LENGTH) return false;
  const bytes = Buffer.from(value, 'base64');
  // Buffer decoding is lenient (skips junk, accepts url-safe): re-encoding proves canonical form.
  return bytes.length === PUBLIC_KEY_BYTES && bytes.toString('base64') === value;
}

/**
 * Checks a parsed `send-email-code` body and keeps only its known fields.
 * Throws `HttpError` `invalid_request` naming the field, e.g. `email: required string`.
 */
export function parseSendEmailCodeRequest(body: unknown): SendEmailCodeRequest {
  const object = asObject(body);
  return { email: requireString(object, 'email') };
}

/**
 * Checks a parsed `confirm-email-code` body and keeps only its known fields.
 * Throws `HttpError` `invalid_request` naming the field.
 */
export function parseConfirmEmailCodeRequest(body: unknown): ConfirmEmailCodeRequest {
  const object = asObject(body);
  const challengeId = requireString(object, 'challenge_id');
  const code = requireString(object, 'code');
  const clientPublicKey = requireString(object, 'client_public_key');
  if (!isBase64PublicKey(clientPublicKey)) invalid('client_public_key: must be standard base64 of exactly 32 bytes');
  if (isSmallOrderEd25519Key(Buffer.from(clientPublicKey, 'base64'))) invalid('client_public_key: must not be a small-order Ed25519 point');
  return { challenge_id: challengeId, code, client_public_key: clientPublicKey };
}

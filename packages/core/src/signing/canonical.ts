import { createHash } from 'node:crypto';
import type { CommandRequest, SubscribeRequest, UnsignedEvent } from '../domain.js';

/** Domain-separation tags of SPEC §3. */
export const SigningContexts = {
  executeCommand: 'edgegateway.v1/execute-command',
  subscribeEvents: 'edgegateway.v1/subscribe-events',
  commandResult: 'edgegateway.v1/command-result',
  event: 'edgegateway.v1/event',
} as const;

type Part = string | Uint8Array;

/** `i64(n)`: 8-byte big-endian two's complement. */
export function i64(n: number | bigint): Uint8Array {
  const out = Buffer.allocUnsafe(8);
  out.writeBigInt64BE(BigInt(n));
  return out;
}

/** `H(p)`: SHA-256 of the payload. */
export function sha256(payload: Uint8Array): Uint8Array {
  return createHash('sha256').update(payload).digest();
}

/** Concatenation of `lp(part)` for each part (SPEC §3). */
export function canonical(parts: readonly Part[]): Buffer {
  const encoded = parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : part));
  let size = 0;
  for (const part of encoded) size += 4 + part.length;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const part of encoded) {
    offset = out.writeUInt32BE(part.length, offset);
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function commandRequestBytes(r: Omit<CommandRequest, 'signature'>): Buffer {
  return canonical([
    SigningContexts.executeCommand,
    r.deviceSessionId,
    r.messageType,
    r.requestId,
    i64(r.timestampMs),
    sha256(r.payload),
  ]);
}

export function subscribeRequestBytes(r: Omit<SubscribeRequest, 'signature'>): Buffer {
  return canonical([
    SigningContexts.subscribeEvents,
    r.deviceSessionId,
    r.requestId,
    i64(r.timestampMs),
    r.resumeAfterEventId,
  ]);
}

export interface CommandResultFields {
  readonly requestId: string;
  readonly resultCode: string;
  readonly timestampMs: number;
  readonly payload: Uint8Array;
}

export function commandResultBytes(r: CommandResultFields): Buffer {
  return canonical([
    SigningContexts.commandResult,
    r.requestId,
    r.resultCode,
    i64(r.timestampMs),
    sha256(r.payload),
  ]);
}

export function eventBytes(e: UnsignedEvent): Buffer {
  return canonical([
    SigningContexts.event,
    e.eventId,
    e.eventType,
    e.userId,
    e.deviceSessionId,
    i64(e.timestampMs),
    sha256(e.payload),
  ]);
}

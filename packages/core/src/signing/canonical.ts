import { createHash } from 'node:crypto';
import { SigningContexts, canonical as protocolCanonical, i64 } from '@edge-gateway/protocol';
import type { CommandRequest, SubscribeRequest, UnsignedEvent } from '../domain.js';

// The layout of SPEC §3 is the protocol package's (devices build the same bytes from it); the
// core adds a synchronous SHA-256 (node:crypto) for its hot path and hands out Buffers.
export { SigningContexts, i64 } from '@edge-gateway/protocol';

/** `H(p)`: SHA-256 of the payload. */
export function sha256(payload: Uint8Array): Uint8Array {
  return createHash('sha256').update(payload).digest();
}

/** Concatenation of `lp(part)` for each part (SPEC §3). */
export function canonical(parts: readonly (string | Uint8Array)[]): Buffer {
  const bytes = protocolCanonical(parts);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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

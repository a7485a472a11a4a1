import { utf8 } from './protobuf-wire.js';

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
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, BigInt(n));
  return out;
}

/** `H(p)`: SHA-256 (WebCrypto). */
export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
}

/** Concatenation of `lp(part)` for each part: 4-byte big-endian length, then the bytes (SPEC §3). */
export function canonical(parts: readonly Part[]): Uint8Array {
  const encoded = parts.map((part) => (typeof part === 'string' ? utf8(part) : part));
  let size = 0;
  for (const part of encoded) size += 4 + part.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const part of encoded) {
    view.setUint32(offset, part.length);
    out.set(part, offset + 4);
    offset += 4 + part.length;
  }
  return out;
}

/** Signed bytes of an ExecuteCommand request. */
export async function commandRequestBytes(r: {
  deviceSessionId: string;
  messageType: string;
  requestId: string;
  timestampMs: number;
  payload: Uint8Array;
}): Promise<Uint8Array> {
  return canonical([SigningContexts.executeCommand, r.deviceSessionId, r.messageType, r.requestId, i64(r.timestampMs), await sha256(r.payload)]);
}

/** Signed bytes of a SubscribeEvents request. */
export function subscribeRequestBytes(r: { deviceSessionId: string; requestId: string; timestampMs: number; resumeAfterEventId: string }): Uint8Array {
  return canonical([SigningContexts.subscribeEvents, r.deviceSessionId, r.requestId, i64(r.timestampMs), r.resumeAfterEventId]);
}

/** Signed bytes of an ExecuteCommand result. */
export async function commandResultBytes(r: { requestId: string; resultCode: string; timestampMs: number; payload: Uint8Array }): Promise<Uint8Array> {
  return canonical([SigningContexts.commandResult, r.requestId, r.resultCode, i64(r.timestampMs), await sha256(r.payload)]);
}

/** Signed bytes of a push event. */
export async function eventBytes(e: {
  eventId: string;
  eventType: string;
  userId: string;
  deviceSessionId: string;
  timestampMs: number;
  payload: Uint8Array;
}): Promise<Uint8Array> {
  return canonical([SigningContexts.event, e.eventId, e.eventType, e.userId, e.deviceSessionId, i64(e.timestampMs), await sha256(e.payload)]);
}

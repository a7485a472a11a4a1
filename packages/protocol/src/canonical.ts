import { toHex } from './base64.js';
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

/**
 * `H(p)`: SHA-256 (WebCrypto). Asynchronous, hence the suffix: in `@edge-gateway/core` and
 * `@edge-gateway/client`, `sha256` is synchronous (node:crypto).
 */
export async function sha256Async(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
}

/** @deprecated Use {@link sha256Async}: elsewhere `sha256` names the synchronous hash. */
export const sha256 = sha256Async;

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

type CommandRequestFields = { deviceSessionId: string; messageType: string; requestId: string; timestampMs: number; payload: Uint8Array };
type SubscribeRequestFields = { deviceSessionId: string; requestId: string; timestampMs: number; resumeAfterEventId: string };
type CommandResultFields = { requestId: string; resultCode: string; timestampMs: number; payload: Uint8Array };
type EventFields = { eventId: string; eventType: string; userId: string; deviceSessionId: string; timestampMs: number; payload: Uint8Array };

// The layouts of SPEC §3, given the payload's digest: one definition for the WebCrypto
// builders below and the synchronous ones of `createSyncSigning`.
const layouts = {
  commandRequest: (r: CommandRequestFields, digest: Uint8Array) =>
    canonical([SigningContexts.executeCommand, r.deviceSessionId, r.messageType, r.requestId, i64(r.timestampMs), digest]),
  commandResult: (r: CommandResultFields, digest: Uint8Array) => canonical([SigningContexts.commandResult, r.requestId, r.resultCode, i64(r.timestampMs), digest]),
  event: (e: EventFields, digest: Uint8Array) =>
    canonical([SigningContexts.event, e.eventId, e.eventType, e.userId, e.deviceSessionId, i64(e.timestampMs), digest]),
};

/** Signed bytes of an ExecuteCommand request (WebCrypto SHA-256; `createSyncSigning` has the synchronous form). */
export async function commandRequestBytesAsync(r: CommandRequestFields): Promise<Uint8Array> {
  return layouts.commandRequest(r, await sha256Async(r.payload));
}

/** @deprecated Use {@link commandRequestBytesAsync}: in `@edge-gateway/core` and `@edge-gateway/client`, `commandRequestBytes` returns the bytes synchronously. */
export const commandRequestBytes = commandRequestBytesAsync;

/** Signed bytes of a SubscribeEvents request. */
export function subscribeRequestBytes(r: SubscribeRequestFields): Uint8Array {
  return canonical([SigningContexts.subscribeEvents, r.deviceSessionId, r.requestId, i64(r.timestampMs), r.resumeAfterEventId]);
}

/** Signed bytes of an ExecuteCommand result (WebCrypto SHA-256; `createSyncSigning` has the synchronous form). */
export async function commandResultBytesAsync(r: CommandResultFields): Promise<Uint8Array> {
  return layouts.commandResult(r, await sha256Async(r.payload));
}

/** @deprecated Use {@link commandResultBytesAsync}: in `@edge-gateway/core` and `@edge-gateway/client`, `commandResultBytes` returns the bytes synchronously. */
export const commandResultBytes = commandResultBytesAsync;

/** Signed bytes of a push event (WebCrypto SHA-256; `createSyncSigning` has the synchronous form). */
export async function eventBytesAsync(e: EventFields): Promise<Uint8Array> {
  return layouts.event(e, await sha256Async(e.payload));
}

/** @deprecated Use {@link eventBytesAsync}: in `@edge-gateway/core` and `@edge-gateway/client`, `eventBytes` returns the bytes synchronously. */
export const eventBytes = eventBytesAsync;

/** A synchronous SHA-256, e.g. `(data) => createHash('sha256').update(data).digest()` on Node. */
export type SyncSha256 = (data: Uint8Array) => Uint8Array;

/** The signing bytes of SPEC §3 and `signer_key_id`, computed synchronously with a given SHA-256. */
export interface SyncSigning {
  commandRequestBytes(r: CommandRequestFields): Uint8Array;
  subscribeRequestBytes(r: SubscribeRequestFields): Uint8Array;
  commandResultBytes(r: CommandResultFields): Uint8Array;
  eventBytes(e: EventFields): Uint8Array;
  /** `signer_key_id` of a raw 32-byte public key. */
  keyId(rawPublicKey: Uint8Array): string;
}

/**
 * The same bytes as the WebCrypto builders, without awaiting: for hosts that have a
 * synchronous SHA-256 (Node's `node:crypto`) and sign or verify on a hot path. The protocol
 * package itself stays free of Node imports; the host passes its hash.
 */
export function createSyncSigning(hash: SyncSha256): SyncSigning {
  return {
    commandRequestBytes: (r) => layouts.commandRequest(r, hash(r.payload)),
    subscribeRequestBytes,
    commandResultBytes: (r) => layouts.commandResult(r, hash(r.payload)),
    eventBytes: (e) => layouts.event(e, hash(e.payload)),
    keyId: (raw) => keyIdOfDigest(hash(raw)),
  };
}

/** `signer_key_id` from the SHA-256 of the raw public key: lowercase hex of its first 8 bytes (SPEC §3). */
export function keyIdOfDigest(digest: Uint8Array): string {
  return toHex(digest.subarray(0, 8));
}

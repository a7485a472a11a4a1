import { createHash } from 'node:crypto';
import { createSyncSigning } from '@edge-gateway/protocol';

// The canonical signing bytes of SPEC §3, synchronous on Node (node:crypto's SHA-256); the
// layouts are the protocol package's, so they are the same bytes as in browsers and the gateway.
const signing = createSyncSigning((data) => createHash('sha256').update(data).digest());

type Fields<K extends keyof typeof signing> = Parameters<(typeof signing)[K]>[0];

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Signed bytes of an ExecuteCommand request. */
export function commandRequestBytes(r: Fields<'commandRequestBytes'>): Buffer {
  return asBuffer(signing.commandRequestBytes(r));
}

/** Signed bytes of a SubscribeEvents request. */
export function subscribeRequestBytes(r: Fields<'subscribeRequestBytes'>): Buffer {
  return asBuffer(signing.subscribeRequestBytes(r));
}

/** Signed bytes of an ExecuteCommand result. */
export function commandResultBytes(r: Fields<'commandResultBytes'>): Buffer {
  return asBuffer(signing.commandResultBytes(r));
}

/** Signed bytes of a push event. */
export function eventBytes(e: Fields<'eventBytes'>): Buffer {
  return asBuffer(signing.eventBytes(e));
}

/** `signer_key_id`: lowercase hex of the first 8 bytes of SHA-256 of the raw public key (SPEC §3). */
export function keyId(rawPublicKey: Uint8Array): string {
  return signing.keyId(rawPublicKey);
}

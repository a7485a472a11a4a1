import { verify, type KeyObject } from 'node:crypto';
import type { CommandRequest, SubscribeRequest } from '../domain.js';
import { commandRequestBytes, subscribeRequestBytes } from './canonical.js';

/** Verifies a pure Ed25519 signature; never throws for a bad signature. */
export function verifyEd25519(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return verify(null, data, publicKey, signature);
  } catch {
    return false;
  }
}

export function verifyCommandRequest(publicKey: KeyObject, request: CommandRequest): boolean {
  return verifyEd25519(publicKey, commandRequestBytes(request), request.signature);
}

export function verifySubscribeRequest(publicKey: KeyObject, request: SubscribeRequest): boolean {
  return verifyEd25519(publicKey, subscribeRequestBytes(request), request.signature);
}

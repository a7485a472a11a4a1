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

/**
 * {@link verifyEd25519} computed in libuv's threadpool, so the event loop stays free; resolves
 * false (never rejects) for a bad signature or key.
 */
export function verifyEd25519Async(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
  if (signature.length !== 64) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      verify(null, data, publicKey, signature, (error, ok) => resolve(error === null && ok));
    } catch {
      resolve(false);
    }
  });
}

export function verifyCommandRequestAsync(publicKey: KeyObject, request: CommandRequest): Promise<boolean> {
  return verifyEd25519Async(publicKey, commandRequestBytes(request), request.signature);
}

export function verifySubscribeRequestAsync(publicKey: KeyObject, request: SubscribeRequest): Promise<boolean> {
  return verifyEd25519Async(publicKey, subscribeRequestBytes(request), request.signature);
}

export function verifyCommandRequest(publicKey: KeyObject, request: CommandRequest): boolean {
  return verifyEd25519(publicKey, commandRequestBytes(request), request.signature);
}

export function verifySubscribeRequest(publicKey: KeyObject, request: SubscribeRequest): boolean {
  return verifyEd25519(publicKey, subscribeRequestBytes(request), request.signature);
}

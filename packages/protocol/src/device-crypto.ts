import { fromBase64 } from './base64.js';
import { commandRequestBytesAsync, keyIdOfDigest, sha256Async, subscribeRequestBytes } from './canonical.js';
import type { ExecuteCommandRequest, SubscribeEventsRequest } from './messages.js';

// Ed25519 through WebCrypto (`crypto.subtle`), available in browsers and in Node 20+.

const ED25519 = { name: 'Ed25519' } as const;

/** A gateway response or event whose signature could not be verified (unknown key id or bad signature). */
export class GatewaySignatureError extends Error {
  override readonly name = 'GatewaySignatureError';
  readonly code = 'invalid_gateway_signature';
}

/**
 * `signer_key_id`: lowercase hex of the first 8 bytes of SHA-256 of the raw public key
 * (SPEC §3), through WebCrypto. In `@edge-gateway/core` and `@edge-gateway/client`, `keyId` is
 * synchronous.
 */
export async function keyIdAsync(rawPublicKey: Uint8Array): Promise<string> {
  return keyIdOfDigest(await sha256Async(rawPublicKey));
}

/** @deprecated Use {@link keyIdAsync}: elsewhere `keyId` returns the id synchronously. */
export const keyId = keyIdAsync;

/** A gateway public key: raw 32 bytes, or their standard base64. */
export type GatewayPublicKey = Uint8Array | string;

/**
 * The gateway keys a device trusts, by `signer_key_id`, so several keys can be trusted
 * during a rotation. Create with {@link TrustedKeys.create}.
 */
export class TrustedKeys {
  private constructor(private readonly keys: ReadonlyMap<string, CryptoKey>) {}

  /** Imports the keys; throws `TypeError` for anything but 32 raw bytes (or their base64). */
  static async create(keys: readonly GatewayPublicKey[]): Promise<TrustedKeys> {
    if (keys.length === 0) throw new TypeError('at least one gateway public key is required');
    const map = new Map<string, CryptoKey>();
    for (const key of keys) {
      const raw = typeof key === 'string' ? fromBase64(key) : key;
      if (raw.length !== 32) throw new TypeError('a gateway public key must be 32 raw bytes (or their base64)');
      map.set(await keyIdAsync(raw), await crypto.subtle.importKey('raw', raw as Uint8Array<ArrayBuffer>, ED25519, false, ['verify']));
    }
    return new TrustedKeys(map);
  }

  /** Key ids trusted. */
  get ids(): string[] {
    return [...this.keys.keys()];
  }

  /** Rejects with `GatewaySignatureError` unless `signature` over `data` verifies with the key `signerKeyId`. */
  async verify(what: string, signerKeyId: string, data: Uint8Array, signature: Uint8Array): Promise<void> {
    const key = this.keys.get(signerKeyId);
    if (key === undefined) throw new GatewaySignatureError(`${what} is signed by unknown key id "${signerKeyId}"`);
    let ok = false;
    try {
      ok = signature.length === 64 && (await crypto.subtle.verify(ED25519, key, signature as Uint8Array<ArrayBuffer>, data as Uint8Array<ArrayBuffer>));
    } catch {
      ok = false;
    }
    if (!ok) throw new GatewaySignatureError(`${what} has an invalid signature`);
  }
}

/** Imports a device's PKCS#8 (DER) Ed25519 private key for signing; non-extractable. */
export function importDevicePrivateKey(pkcs8: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('pkcs8', pkcs8 as Uint8Array<ArrayBuffer>, ED25519, false, ['sign']);
}

/** Pure Ed25519 signature (64 bytes) with a WebCrypto key. */
export async function signEd25519(privateKey: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign(ED25519, privateKey, data as Uint8Array<ArrayBuffer>));
}

/** A signed ExecuteCommand request (SPEC §3). */
export async function signCommandRequest(privateKey: CryptoKey, fields: Omit<ExecuteCommandRequest, 'signature'>): Promise<ExecuteCommandRequest> {
  return { ...fields, signature: await signEd25519(privateKey, await commandRequestBytesAsync(fields)) };
}

/** A signed SubscribeEvents request (SPEC §3). */
export async function signSubscribeRequest(privateKey: CryptoKey, fields: Omit<SubscribeEventsRequest, 'signature'>): Promise<SubscribeEventsRequest> {
  return { ...fields, signature: await signEd25519(privateKey, subscribeRequestBytes(fields)) };
}

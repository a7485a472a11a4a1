import { createPrivateKey, verify, type KeyObject } from 'node:crypto';
import { ed25519PublicKeyFromRaw, keyId } from '@edge-gateway/core';
import { GatewaySignatureError } from './errors.js';

/** A gateway public key: raw 32 bytes, or their standard base64. */
export type GatewayPublicKey = Uint8Array | string;

/**
 * The gateway keys a client trusts, by `signer_key_id` (SPEC §3), so several keys can be
 * trusted during a rotation.
 */
export class TrustedGatewayKeys {
  private readonly keys = new Map<string, KeyObject>();

  constructor(keys: readonly GatewayPublicKey[]) {
    if (keys.length === 0) throw new TypeError('at least one gateway public key is required');
    for (const key of keys) {
      const raw = typeof key === 'string' ? Buffer.from(key, 'base64') : key;
      if (raw.length !== 32) throw new TypeError('a gateway public key must be 32 raw bytes (or their base64)');
      this.keys.set(keyId(raw), ed25519PublicKeyFromRaw(raw));
    }
  }

  /** Key ids trusted. */
  get ids(): string[] {
    return [...this.keys.keys()];
  }

  /** Throws `GatewaySignatureError` unless `signature` over `data` verifies with the key `signerKeyId`. */
  verify(what: string, signerKeyId: string, data: Uint8Array, signature: Uint8Array): void {
    const key = this.keys.get(signerKeyId);
    if (key === undefined) throw new GatewaySignatureError(`${what} is signed by unknown key id "${signerKeyId}"`);
    let ok = false;
    try {
      ok = signature.length === 64 && verify(null, data, key, signature);
    } catch {
      ok = false;
    }
    if (!ok) throw new GatewaySignatureError(`${what} has an invalid signature`);
  }
}

/** Accepts a KeyObject or a PKCS#8 PEM string; insists on Ed25519. */
export function devicePrivateKey(key: KeyObject | string): KeyObject {
  const object = typeof key === 'string' ? createPrivateKey({ key, format: 'pem' }) : key;
  if (object.type !== 'private' || object.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('the device key must be an Ed25519 private key');
  }
  return object;
}

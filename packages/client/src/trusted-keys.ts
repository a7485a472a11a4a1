import { createPrivateKey, type KeyObject } from 'node:crypto';
import { TrustedKeys, type GatewayPublicKey } from '@edge-gateway/protocol';
import { keyId } from './signing.js';

export type { GatewayPublicKey } from '@edge-gateway/protocol';

/**
 * The gateway keys a client trusts, by `signer_key_id` (SPEC §3), so several keys can be
 * trusted during a rotation. Checked at once (a bad key throws `TypeError` here); signatures
 * are verified by the protocol package's {@link TrustedKeys}, the same code as in browsers.
 */
export class TrustedGatewayKeys {
  /** Key ids trusted. */
  readonly ids: string[];
  /** The imported keys. */
  readonly keys: Promise<TrustedKeys>;

  constructor(keys: readonly GatewayPublicKey[]) {
    if (keys.length === 0) throw new TypeError('at least one gateway public key is required');
    const raws = keys.map((key) => {
      const raw = typeof key === 'string' ? Buffer.from(key, 'base64') : key;
      if (raw.length !== 32) throw new TypeError('a gateway public key must be 32 raw bytes (or their base64)');
      return raw;
    });
    this.ids = raws.map((raw) => keyId(raw));
    this.keys = TrustedKeys.create(raws);
  }

  /** Rejects with `GatewaySignatureError` unless `signature` over `data` verifies with the key `signerKeyId`. */
  async verify(what: string, signerKeyId: string, data: Uint8Array, signature: Uint8Array): Promise<void> {
    await (await this.keys).verify(what, signerKeyId, data, signature);
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

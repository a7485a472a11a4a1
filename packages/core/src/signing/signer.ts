import { sign, type KeyObject } from 'node:crypto';
import type { ResponseSigner } from '../ports/response-signer.port.js';
import { keyId, loadEd25519PrivateKeyPem, rawPublicKey } from './keys.js';

/** Ed25519 response signer backed by a node:crypto private key object. */
export class Ed25519ResponseSigner implements ResponseSigner {
  readonly keyId: string;
  readonly publicKey: Uint8Array;

  constructor(private readonly privateKey: KeyObject) {
    if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
      throw new TypeError('Ed25519ResponseSigner needs an Ed25519 private key');
    }
    this.publicKey = rawPublicKey(privateKey);
    this.keyId = keyId(this.publicKey);
  }

  /** Loads a PKCS#8 PEM; throws `KeyFormatError` for anything that is not Ed25519. */
  static fromPem(pem: string | Buffer): Ed25519ResponseSigner {
    return new Ed25519ResponseSigner(loadEd25519PrivateKeyPem(pem));
  }

  sign(data: Uint8Array): Uint8Array {
    return sign(null, data, this.privateKey);
  }

  /** Same signature as {@link Ed25519ResponseSigner.sign}, computed in libuv's threadpool. */
  signAsync(data: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      sign(null, data, this.privateKey, (error, signature) => (error ? reject(error) : resolve(signature)));
    });
  }
}

import { signWith, type ResponseSigner } from '../ports/response-signer.port.js';

/**
 * A {@link ResponseSigner} whose key can be replaced while the gateway serves (signer key
 * rotation without downtime). Every call reads the key in use once, so a signature and the
 * `keyId` read in the same synchronous step always belong together; the services read both in
 * one step.
 */
export class RotatingResponseSigner implements ResponseSigner {
  private current: ResponseSigner;

  constructor(initial: ResponseSigner) {
    this.current = initial;
  }

  get keyId(): string {
    return this.current.keyId;
  }

  get publicKey(): Uint8Array {
    return this.current.publicKey;
  }

  sign(data: Uint8Array): Uint8Array {
    return this.current.sign(data);
  }

  signAsync(data: Uint8Array): Promise<Uint8Array> {
    return signWith(this.current, data);
  }

  /** Signs with `next` from now on (calls already started finish with the old key); returns the old signer. */
  rotate(next: ResponseSigner): ResponseSigner {
    const previous = this.current;
    this.current = next;
    return previous;
  }
}

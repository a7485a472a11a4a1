/** Signs gateway responses and events (SPEC §3). */
export interface ResponseSigner {
  /** `signer_key_id` of the signing key: lowercase hex of SHA-256(raw public key)[0..8]. */
  readonly keyId: string;
  /** Raw 32-byte public key, for publishing to clients. */
  readonly publicKey: Uint8Array;
  /** Pure Ed25519 signature (64 bytes) of the canonical bytes. */
  sign(data: Uint8Array): Uint8Array;
  /**
   * Optional asynchronous variant of {@link ResponseSigner.sign} (same bytes), e.g. computed off
   * the event loop. The request services prefer it when present.
   */
  signAsync?(data: Uint8Array): Promise<Uint8Array>;
}

/** Signs with `signAsync` when the signer has it, otherwise with `sign`. */
export function signWith(signer: ResponseSigner, data: Uint8Array): Promise<Uint8Array> {
  return signer.signAsync !== undefined ? signer.signAsync(data) : Promise.resolve(signer.sign(data));
}

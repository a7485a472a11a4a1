/** Signs gateway responses and events (SPEC §3). */
export interface ResponseSigner {
  /** `signer_key_id` of the signing key: lowercase hex of SHA-256(raw public key)[0..8]. */
  readonly keyId: string;
  /** Raw 32-byte public key, for publishing to clients. */
  readonly publicKey: Uint8Array;
  /** Pure Ed25519 signature (64 bytes) of the canonical bytes. */
  sign(data: Uint8Array): Uint8Array;
}

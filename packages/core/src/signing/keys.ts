import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Thrown when key material is not what the gateway accepts. */
export class KeyFormatError extends Error {
  override readonly name = 'KeyFormatError';
}

/** Parses a raw 32-byte Ed25519 public key into a reusable key object. */
export function ed25519PublicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new KeyFormatError('Ed25519 public key must be 32 bytes');
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** Raw 32-byte public key of an Ed25519 key object. */
export function rawPublicKey(key: KeyObject): Buffer {
  const der = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

/** `signer_key_id`: lowercase hex of the first 8 bytes of SHA-256 of the raw public key (SPEC §3). */
export function keyId(rawPublic: Uint8Array): string {
  return createHash('sha256').update(rawPublic).digest().subarray(0, 8).toString('hex');
}

/**
 * Loads a PKCS#8 PEM Ed25519 private key. Refuses anything else with a message that says
 * what was wrong (never the key material itself).
 */
export function loadEd25519PrivateKeyPem(pem: string | Buffer): KeyObject {
  const text = typeof pem === 'string' ? pem : pem.toString('utf8');
  if (!/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) {
    throw new KeyFormatError('signer key is not a PEM private key');
  }
  if (!text.includes('-----BEGIN PRIVATE KEY-----')) {
    throw new KeyFormatError('signer key is not PKCS#8 (expected "BEGIN PRIVATE KEY")');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch {
    throw new KeyFormatError('signer key PEM could not be parsed as PKCS#8');
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new KeyFormatError(`signer key is ${key.asymmetricKeyType ?? 'unknown'}, expected ed25519`);
  }
  return key;
}

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Thrown when key material is not what the gateway accepts. */
export class KeyFormatError extends Error {
  override readonly name = 'KeyFormatError';
  readonly code = 'invalid_key_format';
}

// Encodings of the Ed25519 points of small order (the identity, the points of order 2, 4 and 8)
// and the non-canonical encodings of y = p-1, p, p+1, compared without the sign bit (as
// libsodium's blocklist does). With such a key, trivial signatures (e.g. R = identity, S = 0)
// verify for many messages, so a signature proves nothing about who made it.
const SMALL_ORDER_KEYS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((hex) => Buffer.from(hex, 'hex'));

/**
 * True when a raw 32-byte Ed25519 public key is a point of small order (or a non-canonical
 * encoding of one): such keys are refused wherever a client key is accepted (SPEC §5.1).
 */
export function isSmallOrderEd25519Key(raw: Uint8Array): boolean {
  if (raw.length !== 32) return false;
  const masked = Buffer.from(raw);
  masked[31] = (masked[31] as number) & 0x7f;
  return SMALL_ORDER_KEYS.some((key) => key.equals(masked));
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

/** A freshly generated Ed25519 key pair: the private key as PKCS#8 PEM, the raw public key and its key id. */
export interface GeneratedEd25519Key {
  /** PKCS#8 PEM, the format {@link loadEd25519PrivateKeyPem} accepts (signer key and device key files). */
  readonly pem: string;
  /** The raw 32-byte public key. */
  readonly publicKeyRaw: Buffer;
  /** {@link keyId} of the public key (SPEC §3). */
  readonly keyId: string;
}

/** Generates an Ed25519 key pair in the PKCS#8 PEM format the gateway loads (`edge-gateway keygen`, dev mode). */
export function generateEd25519Key(): GeneratedEd25519Key {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const publicKeyRaw = rawPublicKey(privateKey);
  return { pem, publicKeyRaw, keyId: keyId(publicKeyRaw) };
}

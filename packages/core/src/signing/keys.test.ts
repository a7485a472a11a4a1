import { generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { vectors } from '../../test/helpers.js';
import { KeyFormatError, ed25519PublicKeyFromRaw, generateEd25519Key, isSmallOrderEd25519Key, keyId, loadEd25519PrivateKeyPem, rawPublicKey } from './keys.js';
import { Ed25519ResponseSigner } from './signer.js';

const rsaPkcs8 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const rsaPkcs1 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
const ecPkcs8 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const ed25519 = generateKeyPairSync('ed25519');
const ed25519Pem = ed25519.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const ed25519PublicPem = ed25519.publicKey.export({ format: 'pem', type: 'spki' }).toString();

const refusals: ReadonlyArray<readonly [string, string, string]> = [
  ['plain text (not PEM)', 'this is not a key', 'signer key is not a PEM private key'],
  ['an empty file', '', 'signer key is not a PEM private key'],
  ['a PEM public key', ed25519PublicPem, 'signer key is not a PEM private key'],
  ['an RSA PKCS#8 key', rsaPkcs8, 'signer key is rsa, expected ed25519'],
  ['an EC P-256 PKCS#8 key', ecPkcs8, 'signer key is ec, expected ed25519'],
  ['a PKCS#1 RSA key', rsaPkcs1, 'signer key is not PKCS#8 (expected "BEGIN PRIVATE KEY")'],
  [
    'garbage inside PEM armor',
    '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbCwganVzdCBnYXJiYWdl\n-----END PRIVATE KEY-----\n',
    'signer key PEM could not be parsed as PKCS#8',
  ],
];

describe('loadEd25519PrivateKeyPem / Ed25519ResponseSigner.fromPem', () => {
  it.each(refusals)('refuses %s with a clear KeyFormatError', (_label, pem, message) => {
    for (const load of [() => loadEd25519PrivateKeyPem(pem), () => Ed25519ResponseSigner.fromPem(pem), () => loadEd25519PrivateKeyPem(Buffer.from(pem))]) {
      let caught: unknown;
      try {
        load();
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(KeyFormatError);
      expect((caught as KeyFormatError).name).toBe('KeyFormatError');
      expect((caught as KeyFormatError).message).toBe(message);
    }
  });

  it('never puts key material in the error message', () => {
    try {
      loadEd25519PrivateKeyPem(rsaPkcs8);
      expect.unreachable();
    } catch (error) {
      const body = rsaPkcs8.split('\n')[1] as string;
      expect((error as Error).message).not.toContain(body.slice(0, 20));
    }
  });

  it('loads a PKCS#8 Ed25519 key (string or Buffer) and signs verifiably', () => {
    const signer = Ed25519ResponseSigner.fromPem(Buffer.from(ed25519Pem));
    expect(Buffer.from(signer.publicKey)).toEqual(rawPublicKey(ed25519.publicKey));
    expect(signer.keyId).toBe(keyId(rawPublicKey(ed25519.publicKey)));
    const data = Buffer.from('hello');
    const signature = signer.sign(data);
    expect(signature).toHaveLength(64);
    expect(verify(null, data, ed25519.publicKey, signature)).toBe(true);
    expect(loadEd25519PrivateKeyPem(ed25519Pem).asymmetricKeyType).toBe('ed25519');
  });

  it('signer constructor refuses a non-Ed25519 or public key object', () => {
    expect(() => new Ed25519ResponseSigner(ed25519.publicKey)).toThrow(TypeError);
    expect(() => new Ed25519ResponseSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)).toThrow(TypeError);
  });
});

describe('raw public keys and key ids', () => {
  it('round-trips a raw 32-byte key and rejects other lengths', () => {
    const raw = Buffer.from(vectors.keys.client.public_key_base64, 'base64');
    expect(rawPublicKey(ed25519PublicKeyFromRaw(raw))).toEqual(raw);
    expect(() => ed25519PublicKeyFromRaw(raw.subarray(0, 31))).toThrow(KeyFormatError);
    expect(() => ed25519PublicKeyFromRaw(Buffer.concat([raw, Buffer.from([0])]))).toThrow('Ed25519 public key must be 32 bytes');
  });

  it('keyId is lowercase hex of the first 8 bytes of SHA-256 of the raw key', () => {
    expect(keyId(Buffer.from(vectors.keys.gateway.public_key_base64, 'base64'))).toBe(vectors.keys.gateway.key_id);
    expect(keyId(new Uint8Array(32))).toBe('66687aadf862bd77');
  });
});

describe('generateEd25519Key', () => {
  it('writes a PKCS#8 PEM the loader accepts, whose public key and key id it returns; every call a new key', () => {
    const generated = generateEd25519Key();
    const loaded = loadEd25519PrivateKeyPem(generated.pem);
    expect(rawPublicKey(loaded).equals(generated.publicKeyRaw)).toBe(true);
    expect(generated.publicKeyRaw).toHaveLength(32);
    expect(generated.keyId).toBe(keyId(generated.publicKeyRaw));
    const signer = Ed25519ResponseSigner.fromPem(generated.pem);
    expect(signer.keyId).toBe(generated.keyId);
    expect(generateEd25519Key().keyId).not.toBe(generated.keyId);
  });
});

describe('isSmallOrderEd25519Key', () => {
  const smallOrder = [
    '00'.repeat(32),
    '01'.padEnd(64, '0'),
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
    'ec' + 'ff'.repeat(30) + '7f',
    'ed' + 'ff'.repeat(30) + '7f',
    'ee' + 'ff'.repeat(30) + '7f',
  ];

  it('flags every small-order encoding, with or without the sign bit', () => {
    for (const hex of smallOrder) {
      for (const sign of [0, 0x80]) {
        const raw = Buffer.from(hex, 'hex');
        raw[31] = (raw[31] as number) | sign;
        expect(isSmallOrderEd25519Key(raw), raw.toString('hex')).toBe(true);
      }
    }
  });

  it('is why: with the all-zero key the all-zero signature verifies for many messages', () => {
    const weak = ed25519PublicKeyFromRaw(Buffer.alloc(32));
    const forged = Array.from({ length: 100 }, (_, i) => Buffer.from(`message ${i}`)).filter((m) => verify(null, m, weak, Buffer.alloc(64)));
    expect(forged.length).toBeGreaterThan(0);
  });

  it('passes generated keys and refuses nothing that is not 32 bytes long', () => {
    for (let i = 0; i < 50; i += 1) expect(isSmallOrderEd25519Key(rawPublicKey(generateKeyPairSync('ed25519').publicKey))).toBe(false);
    expect(isSmallOrderEd25519Key(Buffer.alloc(31))).toBe(false);
  });
});

import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWith, type ResponseSigner } from '../ports/response-signer.port.js';
import { commandRequestBytes } from './canonical.js';
import { Ed25519ResponseSigner } from './signer.js';
import { verifyCommandRequest, verifyCommandRequestAsync, verifyEd25519, verifyEd25519Async } from './verifier.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const signer = new Ed25519ResponseSigner(privateKey);
const data = Buffer.from('edge-gateway async crypto');

describe('threadpool Ed25519 (async crypto path)', () => {
  it('signAsync produces the same (deterministic) signature as sign', async () => {
    const async = await signer.signAsync(data);
    expect(Buffer.from(async).equals(Buffer.from(signer.sign(data)))).toBe(true);
    expect(verifyEd25519(publicKey, data, async)).toBe(true);
  });

  it('signWith uses signAsync when present and falls back to sign', async () => {
    const calls: string[] = [];
    const syncOnly: ResponseSigner = { keyId: 'k', publicKey: new Uint8Array(32), sign: () => (calls.push('sync'), new Uint8Array(64).fill(1)) };
    expect(Array.from(await signWith(syncOnly, data)).every((b) => b === 1)).toBe(true);
    const both: ResponseSigner = { ...syncOnly, signAsync: () => (calls.push('async'), Promise.resolve(new Uint8Array(64).fill(2))) };
    expect(Array.from(await signWith(both, data)).every((b) => b === 2)).toBe(true);
    expect(calls).toEqual(['sync', 'async']);
  });

  it('verifyEd25519Async agrees with verifyEd25519 and never rejects', async () => {
    const signature = signer.sign(data);
    expect(await verifyEd25519Async(publicKey, data, signature)).toBe(true);
    expect(await verifyEd25519Async(other.publicKey, data, signature)).toBe(false);
    expect(await verifyEd25519Async(publicKey, Buffer.from('tampered'), signature)).toBe(false);
    expect(await verifyEd25519Async(publicKey, data, signature.subarray(0, 63))).toBe(false);
    // A private key where a public one belongs is an error inside node:crypto: false, not a throw.
    expect(await verifyEd25519Async(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, data, signature)).toBe(false);
  });

  it('verifyCommandRequestAsync checks the canonical request bytes', async () => {
    const fields = { deviceSessionId: 'ds-1', messageType: 'echo.ping', requestId: 'r-1', timestampMs: 1_700_000_000_000, payload: new Uint8Array([1, 2, 3]) };
    const request = { ...fields, signature: signer.sign(commandRequestBytes(fields)) };
    expect(await verifyCommandRequestAsync(publicKey, request)).toBe(true);
    expect(verifyCommandRequest(publicKey, request)).toBe(true);
    expect(await verifyCommandRequestAsync(publicKey, { ...request, requestId: 'r-2' })).toBe(false);
  });
});

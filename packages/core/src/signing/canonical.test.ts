import { createPrivateKey, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { flipByte, vectors, type VectorCase } from '../../test/helpers.js';
import { encodeServerTime } from '../services/server-time.js';
import { decodeServerTime } from '../../test/helpers.js';
import type { CommandRequest, SubscribeRequest } from '../domain.js';
import { canonical, commandRequestBytes, commandResultBytes, eventBytes, i64, subscribeRequestBytes } from './canonical.js';
import { ed25519PublicKeyFromRaw, keyId, rawPublicKey } from './keys.js';
import { Ed25519ResponseSigner } from './signer.js';
import { verifyCommandRequest, verifyEd25519, verifySubscribeRequest } from './verifier.js';

type Kind = 'command-request' | 'subscribe-request' | 'command-result' | 'event';

function kindOf(c: VectorCase): Kind {
  if ('message_type' in c.fields) return 'command-request';
  if ('resume_after_event_id' in c.fields) return 'subscribe-request';
  if ('result_code' in c.fields) return 'command-result';
  if ('event_type' in c.fields) return 'event';
  throw new Error(`unknown vector case ${c.name}`);
}

const str = (c: VectorCase, k: string): string => {
  const v = c.fields[k];
  if (typeof v !== 'string') throw new Error(`${c.name}: ${k} is not a string`);
  return v;
};
const num = (c: VectorCase, k: string): number => {
  const v = c.fields[k];
  if (typeof v !== 'number') throw new Error(`${c.name}: ${k} is not a number`);
  return v;
};
const payloadOf = (c: VectorCase) => new Uint8Array(Buffer.from(str(c, 'payload_hex'), 'hex'));

function commandRequestOf(c: VectorCase): Omit<CommandRequest, 'signature'> {
  return {
    deviceSessionId: str(c, 'device_session_id'),
    messageType: str(c, 'message_type'),
    requestId: str(c, 'request_id'),
    timestampMs: num(c, 'timestamp_ms'),
    payload: payloadOf(c),
  };
}

function subscribeRequestOf(c: VectorCase): Omit<SubscribeRequest, 'signature'> {
  return {
    deviceSessionId: str(c, 'device_session_id'),
    requestId: str(c, 'request_id'),
    timestampMs: num(c, 'timestamp_ms'),
    resumeAfterEventId: str(c, 'resume_after_event_id'),
  };
}

function canonicalOf(c: VectorCase): Buffer {
  switch (kindOf(c)) {
    case 'command-request':
      return commandRequestBytes(commandRequestOf(c));
    case 'subscribe-request':
      return subscribeRequestBytes(subscribeRequestOf(c));
    case 'command-result':
      return commandResultBytes({
        requestId: str(c, 'request_id'),
        resultCode: str(c, 'result_code'),
        timestampMs: num(c, 'timestamp_ms'),
        payload: payloadOf(c),
      });
    case 'event':
      return eventBytes({
        eventId: str(c, 'event_id'),
        eventType: str(c, 'event_type'),
        userId: str(c, 'user_id'),
        deviceSessionId: str(c, 'device_session_id'),
        timestampMs: num(c, 'timestamp_ms'),
        payload: payloadOf(c),
      });
  }
}

const clientKey = createPrivateKey(vectors.keys.client.private_key_pem);
const clientPublic = ed25519PublicKeyFromRaw(Buffer.from(vectors.keys.client.public_key_base64, 'base64'));
const gatewaySigner = Ed25519ResponseSigner.fromPem(vectors.keys.gateway.private_key_pem);

describe('signing vectors (SPEC §3)', () => {
  it('cover every signed message kind of SPEC §3', () => {
    expect(new Set(vectors.cases.map(kindOf))).toEqual(new Set(['command-request', 'subscribe-request', 'command-result', 'event']));
    expect(vectors.cases.length).toBeGreaterThanOrEqual(7);
  });

  it('key ids and public keys match the vector keys', () => {
    expect(gatewaySigner.keyId).toBe(vectors.keys.gateway.key_id);
    expect(Buffer.from(gatewaySigner.publicKey).toString('base64')).toBe(vectors.keys.gateway.public_key_base64);
    const clientRaw = rawPublicKey(clientKey);
    expect(clientRaw.toString('base64')).toBe(vectors.keys.client.public_key_base64);
    expect(keyId(clientRaw)).toBe(vectors.keys.client.key_id);
    expect(keyId(Buffer.from(vectors.keys.gateway.public_key_base64, 'base64'))).toBe(vectors.keys.gateway.key_id);
    expect(keyId(clientRaw)).toMatch(/^[0-9a-f]{16}$/);
  });

  describe.each(vectors.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    it('reproduces the canonical bytes exactly', () => {
      expect(canonicalOf(c).toString('hex')).toBe(c.canonical_hex);
    });

    it('reproduces the signature exactly', () => {
      const data = canonicalOf(c);
      const signature = c.signer === 'gateway' ? gatewaySigner.sign(data) : sign(null, data, clientKey);
      expect(Buffer.from(signature).toString('hex')).toBe(c.signature_hex);
      const publicKey = c.signer === 'gateway' ? ed25519PublicKeyFromRaw(gatewaySigner.publicKey) : clientPublic;
      expect(verifyEd25519(publicKey, data, Buffer.from(c.signature_hex, 'hex'))).toBe(true);
      expect(verifyEd25519(publicKey, data, flipByte(Buffer.from(c.signature_hex, 'hex'), 63))).toBe(false);
    });
  });

  describe('client request verification', () => {
    const clientCases = vectors.cases.filter((c) => c.signer === 'client');

    it.each(clientCases.map((c) => [c.name, c] as const))('%s verifies, and fails with any flipped byte', (_name, c) => {
      const signature = new Uint8Array(Buffer.from(c.signature_hex, 'hex'));
      if (kindOf(c) === 'command-request') {
        const request = { ...commandRequestOf(c), signature };
        expect(verifyCommandRequest(clientPublic, request)).toBe(true);
        expect(verifyCommandRequest(clientPublic, { ...request, signature: flipByte(signature, 0) })).toBe(false);
        expect(verifyCommandRequest(clientPublic, { ...request, signature: flipByte(signature, 40) })).toBe(false);
        expect(verifyCommandRequest(clientPublic, { ...request, payload: flipByte(Buffer.concat([request.payload, Buffer.from([0])]), 0) })).toBe(false);
        expect(verifyCommandRequest(clientPublic, { ...request, timestampMs: request.timestampMs + 1 })).toBe(false);
        expect(verifyCommandRequest(clientPublic, { ...request, requestId: `${request.requestId}x` })).toBe(false);
        // Signed by the gateway key instead of the client key.
        expect(verifyCommandRequest(ed25519PublicKeyFromRaw(gatewaySigner.publicKey), request)).toBe(false);
      } else {
        expect(kindOf(c)).toBe('subscribe-request');
        const request = { ...subscribeRequestOf(c), signature };
        expect(verifySubscribeRequest(clientPublic, request)).toBe(true);
        expect(verifySubscribeRequest(clientPublic, { ...request, signature: flipByte(signature, 0) })).toBe(false);
        expect(verifySubscribeRequest(clientPublic, { ...request, signature: flipByte(signature, 63) })).toBe(false);
        expect(verifySubscribeRequest(clientPublic, { ...request, resumeAfterEventId: '1-1' })).toBe(false);
        expect(verifySubscribeRequest(clientPublic, { ...request, deviceSessionId: 'ds_other' })).toBe(false);
      }
    });

    it('never throws for a signature of the wrong length', () => {
      const c = clientCases[0] as VectorCase;
      const request = { ...commandRequestOf(c), signature: new Uint8Array(Buffer.from(c.signature_hex, 'hex')).subarray(0, 63) };
      expect(verifyCommandRequest(clientPublic, request)).toBe(false);
      expect(verifyEd25519(clientPublic, Buffer.from('x'), new Uint8Array(0))).toBe(false);
    });
  });

  it('the bootstrap vector payload is the protobuf ServerTime the core encodes', () => {
    const c = vectors.cases.find((v) => v.fields['event_type'] === 'gateway.server_time') as VectorCase;
    const payload = Buffer.from(str(c, 'payload_hex'), 'hex');
    const decoded = decodeServerTime(payload);
    expect(decoded.requestId).toBe('sub-0001');
    expect(Buffer.from(encodeServerTime(decoded.serverTimeMs, decoded.requestId)).toString('hex')).toBe(c.fields['payload_hex']);
  });
});

describe('canonical encoding primitives', () => {
  it('length-prefixes each part with a 4-byte big-endian length', () => {
    expect(canonical(['ab', new Uint8Array([1, 2, 3]), '']).toString('hex')).toBe('00000002616200000003010203' + '00000000');
  });

  it('encodes i64 as 8-byte big-endian two’s complement', () => {
    expect(Buffer.from(i64(-1)).toString('hex')).toBe('ffffffffffffffff');
    expect(Buffer.from(i64(1)).toString('hex')).toBe('0000000000000001');
    expect(Buffer.from(i64(1764201600000)).toString('hex')).toBe('0000019ac29c1400');
  });
});

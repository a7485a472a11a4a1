import { generateKeyPairSync, verify } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StaticRouter, commandResultBytes, ed25519PublicKeyFromRaw, eventBytes, type CommandDownstream } from '@edge-gateway/core';
import { ServerTime } from '../src/generated/index.js';
import { GatewayFixture, execute, signedCommand, signedSubscribe, statusOf, subscribe, type Device } from './fixtures.js';

const MAX_PAYLOAD = 4096;

const echo: CommandDownstream = {
  target: 'in-process',
  execute: async (command) => ({ resultCode: 'ok', payload: Buffer.concat([Buffer.from('echo:'), command.payload]) }),
};

/** Status of a SubscribeEvents call that must fail before any event. */
async function subscribeStatus(f: GatewayFixture, request: Parameters<typeof subscribe>[1]) {
  const reader = subscribe(f.client, request);
  const result = await reader.status;
  expect(reader.events).toHaveLength(0);
  return result;
}

describe('EdgeGateway request pipeline over a real gRPC server (SPEC §4)', () => {
  let f: GatewayFixture;
  let device: Device;

  beforeAll(async () => {
    f = await GatewayFixture.start({ maxPayloadBytes: MAX_PAYLOAD, router: new StaticRouter([{ prefix: 'demo.', downstream: echo }]) });
    device = f.addDevice();
  });
  afterAll(() => f.close());

  it('runs a command and returns a response signed by the gateway', async () => {
    const request = signedCommand(device, { payload: Buffer.from('ping') });
    const response = await execute(f.client, request);
    expect(response.requestId).toBe(request.requestId);
    expect(response.resultCode).toBe('ok');
    expect(Buffer.from(response.payload).toString()).toBe('echo:ping');
    expect(response.signerKeyId).toBe(f.signer.keyId);
    expect(Math.abs(response.timestampMs - Date.now())).toBeLessThan(5000);
    const key = ed25519PublicKeyFromRaw(f.signer.publicKey);
    expect(verify(null, commandResultBytes(response), key, response.signature)).toBe(true);
  });

  it('opens a stream whose first event is the signed gateway.server_time bootstrap', async () => {
    const request = signedSubscribe(device);
    const reader = subscribe(f.client, request);
    const [bootstrap] = await reader.waitForEvents(1);
    reader.call.cancel();
    expect(bootstrap).toMatchObject({ eventId: '', eventType: 'gateway.server_time', userId: device.userId, deviceSessionId: device.deviceSessionId, signerKeyId: f.signer.keyId });
    const serverTime = ServerTime.decode(bootstrap!.payload);
    expect(serverTime.requestId).toBe(request.requestId);
    expect(serverTime.serverTimeMs).toBe(bootstrap!.timestampMs);
    expect(verify(null, eventBytes(bootstrap!), ed25519PublicKeyFromRaw(f.signer.publicKey), bootstrap!.signature)).toBe(true);
  });

  describe('1. field rules → INVALID_ARGUMENT naming the field', () => {
    const idReason = 'must be 1-128 characters of [A-Za-z0-9._:-]';
    it('device_session_id', async () => {
      const expected = { code: status.INVALID_ARGUMENT, details: `device_session_id: ${idReason}` };
      expect(await statusOf(execute(f.client, signedCommand(device, { deviceSessionId: 'bad id!' })))).toEqual(expected);
      expect(await subscribeStatus(f, signedSubscribe(device, { deviceSessionId: '' }))).toEqual(expected);
    });
    it('request_id', async () => {
      const expected = { code: status.INVALID_ARGUMENT, details: `request_id: ${idReason}` };
      expect(await statusOf(execute(f.client, signedCommand(device, { requestId: 'x'.repeat(129) })))).toEqual(expected);
      expect(await subscribeStatus(f, signedSubscribe(device, { requestId: 'a/b' }))).toEqual(expected);
    });
    it('message_type', async () => {
      expect(await statusOf(execute(f.client, signedCommand(device, { messageType: 'Demo.Echo' })))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'message_type: must be 1-128 characters of [a-z0-9._-] starting with a letter',
      });
    });
    it('signature', async () => {
      const expected = { code: status.INVALID_ARGUMENT, details: 'signature: must be exactly 64 bytes' };
      expect(await statusOf(execute(f.client, { ...signedCommand(device), signature: Buffer.alloc(63) }))).toEqual(expected);
      expect(await subscribeStatus(f, { ...signedSubscribe(device), signature: Buffer.alloc(0) })).toEqual(expected);
    });
    it('payload over GATEWAY_MAX_PAYLOAD_BYTES (still within the receive headroom)', async () => {
      expect(await statusOf(execute(f.client, signedCommand(device, { payload: Buffer.alloc(MAX_PAYLOAD + 1) })))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: `payload: must be at most ${MAX_PAYLOAD} bytes`,
      });
      // Exactly at the limit passes the field rules.
      await expect(execute(f.client, signedCommand(device, { payload: Buffer.alloc(MAX_PAYLOAD) }))).resolves.toMatchObject({ resultCode: 'ok' });
    });
    it('a message beyond the receive limit is refused by gRPC itself', async () => {
      const result = await statusOf(execute(f.client, signedCommand(device, { payload: Buffer.alloc(MAX_PAYLOAD + 128 * 1024) })));
      expect(result.code).toBe(status.RESOURCE_EXHAUSTED);
    });
    it('resume_after_event_id', async () => {
      expect(await subscribeStatus(f, signedSubscribe(device, { resumeAfterEventId: 'latest' }))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'resume_after_event_id: must be empty or a stream id <ms>-<seq>',
      });
    });
  });

  it('2. stale or future timestamp → UNAUTHENTICATED', async () => {
    const expected = { code: status.UNAUTHENTICATED, details: 'request timestamp is outside the freshness window' };
    expect(await statusOf(execute(f.client, signedCommand(device, { timestampMs: Date.now() - 6 * 60_000 })))).toEqual(expected);
    expect(await subscribeStatus(f, signedSubscribe(device, { timestampMs: Date.now() + 6 * 60_000 }))).toEqual(expected);
  });

  it('3. unknown device session → UNAUTHENTICATED', async () => {
    const stranger = { ...device, deviceSessionId: 'ds-nobody-knows' };
    const expected = { code: status.UNAUTHENTICATED, details: 'unknown device session' };
    expect(await statusOf(execute(f.client, signedCommand(stranger)))).toEqual(expected);
    expect(await subscribeStatus(f, signedSubscribe(stranger))).toEqual(expected);
  });

  it('4. revoked session → FAILED_PRECONDITION', async () => {
    const revoked = f.addDevice({ status: 'revoked' });
    const expected = { code: status.FAILED_PRECONDITION, details: 'device session is revoked' };
    expect(await statusOf(execute(f.client, signedCommand(revoked)))).toEqual(expected);
    expect(await subscribeStatus(f, signedSubscribe(revoked))).toEqual(expected);
  });

  it('5. signature by another key → UNAUTHENTICATED', async () => {
    const impostor = { ...device, privateKey: generateKeyPairSync('ed25519').privateKey };
    const expected = { code: status.UNAUTHENTICATED, details: 'invalid request signature' };
    expect(await statusOf(execute(f.client, signedCommand(impostor)))).toEqual(expected);
    expect(await subscribeStatus(f, signedSubscribe(impostor))).toEqual(expected);
    // A correctly signed request whose payload was changed afterwards fails the same way.
    const tampered = { ...signedCommand(device), payload: Buffer.from('other') };
    expect(await statusOf(execute(f.client, tampered))).toEqual(expected);
  });

  it('6. no route for the message type → UNIMPLEMENTED', async () => {
    expect(await statusOf(execute(f.client, signedCommand(device, { messageType: 'billing.charge' })))).toEqual({
      code: status.UNIMPLEMENTED,
      details: 'no route for message type billing.charge',
    });
  });

  it('7. reused request_id → ALREADY_EXISTS (both RPCs)', async () => {
    const expected = { code: status.ALREADY_EXISTS, details: 'request_id was already used' };
    const command = signedCommand(device);
    await execute(f.client, command);
    expect(await statusOf(execute(f.client, command))).toEqual(expected);

    const sub = signedSubscribe(device);
    const first = subscribe(f.client, sub);
    await first.waitForEvents(1);
    first.call.cancel();
    expect(await subscribeStatus(f, sub)).toEqual(expected);
  });

  it('session store unreachable → UNAVAILABLE session store unavailable', async () => {
    const uncached = f.addDevice();
    f.sessionStore.failing = true;
    try {
      const expected = { code: status.UNAVAILABLE, details: 'session store unavailable' };
      expect(await statusOf(execute(f.client, signedCommand(uncached)))).toEqual(expected);
      expect(await subscribeStatus(f, signedSubscribe(uncached))).toEqual(expected);
    } finally {
      f.sessionStore.failing = false;
    }
  });

  it('replay store unreachable → UNAVAILABLE replay store unavailable (fails closed)', async () => {
    let ran = 0;
    const counting: CommandDownstream = { target: 'counting', execute: async () => ((ran += 1), { resultCode: 'ok', payload: Buffer.alloc(0) }) };
    const g = await GatewayFixture.start({ router: new StaticRouter([{ prefix: 'demo.', downstream: counting }]) });
    try {
      const d = g.addDevice();
      g.replay.failing = true;
      const expected = { code: status.UNAVAILABLE, details: 'replay store unavailable' };
      expect(await statusOf(execute(g.client, signedCommand(d)))).toEqual(expected);
      expect(await subscribeStatus(g, signedSubscribe(d))).toEqual(expected);
      expect(ran).toBe(0);
      expect(g.hub.size).toBe(0);
    } finally {
      await g.close();
    }
  });

  it('while shutting down → UNAVAILABLE gateway is shutting down', async () => {
    const g = await GatewayFixture.start({ router: new StaticRouter([{ prefix: 'demo.', downstream: echo }]) });
    try {
      const d = g.addDevice();
      g.core.beginShutdown();
      const expected = { code: status.UNAVAILABLE, details: 'gateway is shutting down' };
      expect(await statusOf(execute(g.client, signedCommand(d)))).toEqual(expected);
      expect(await subscribeStatus(g, signedSubscribe(d))).toEqual(expected);
    } finally {
      await g.close();
    }
  });

  it('a non-GatewayError from a downstream that is not UNAVAILABLE/DEADLINE_EXCEEDED → INTERNAL downstream command failed', async () => {
    const failing: CommandDownstream = { target: 'broken', execute: async () => { throw new Error('secret detail'); } };
    const g = await GatewayFixture.start({ router: new StaticRouter([{ prefix: 'demo.', downstream: failing }]) });
    try {
      expect(await statusOf(execute(g.client, signedCommand(g.addDevice())))).toEqual({ code: status.INTERNAL, details: 'downstream command failed' });
    } finally {
      await g.close();
    }
  });
});

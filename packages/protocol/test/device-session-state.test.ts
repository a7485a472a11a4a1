import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DeviceSessionState, GatewayBindingError, TrustedKeys, encodeServerTime, eventBytesAsync, keyIdAsync, subscribeRequestBytes, type GatewayEvent } from '@edge-gateway/protocol';

const gateway = generateKeyPairSync('ed25519').privateKey;
const gatewayRaw = new Uint8Array(Buffer.from(String(createPublicKey(gateway).export({ format: 'jwk' }).x), 'base64url'));

type EventInput = Partial<Omit<GatewayEvent, 'signerKeyId' | 'signature'>>;

/** A gateway-signed event; a bootstrap answering `subscribeRequestId` unless overridden. */
async function signedEvent(subscribeRequestId: string, over: EventInput = {}): Promise<GatewayEvent> {
  const fields = { eventId: '', eventType: 'gateway.server_time', userId: 'u-1', deviceSessionId: 'ds-1', timestampMs: 1, payload: encodeServerTime(50_000, subscribeRequestId), ...over };
  return { ...fields, signerKeyId: await keyIdAsync(gatewayRaw), signature: sign(null, await eventBytesAsync(fields), gateway) };
}

/** A local clock the test moves by hand. */
function manualClock(start: number): { now: () => number; set: (ms: number) => void } {
  let t = start;
  return { now: () => t, set: (ms) => (t = ms) };
}

describe('DeviceSessionState', () => {
  it('starts with no offset, no resume point and the given user; now() is the local clock', () => {
    const clock = manualClock(1000);
    const state = new DeviceSessionState({ deviceSessionId: 'ds-1', clock: clock.now });
    expect({ offset: state.clockOffsetMs, last: state.lastEventId, user: state.userId, now: state.now() }).toEqual({ offset: 0, last: '', user: undefined, now: 1000 });
    expect(new DeviceSessionState({ deviceSessionId: 'ds-1', userId: 'u-1' }).userId).toBe('u-1');
  });

  it('builds request fields for its session, timestamped with the gateway clock, with a fresh request id unless given', async () => {
    const clock = manualClock(10_000);
    const state = new DeviceSessionState({ deviceSessionId: 'ds-1', clock: clock.now });
    const payload = new Uint8Array([1, 2]);
    expect(state.commandFields('demo.echo', payload, 'r-1')).toEqual({ deviceSessionId: 'ds-1', messageType: 'demo.echo', requestId: 'r-1', timestampMs: 10_000, payload });
    const a = state.commandFields('demo.echo', payload);
    const b = state.commandFields('demo.echo', payload);
    expect(a.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.requestId).not.toBe(b.requestId);
    expect(state.subscribeFields()).toMatchObject({ deviceSessionId: 'ds-1', timestampMs: 10_000, resumeAfterEventId: '' });
    expect(subscribeRequestBytes(state.subscribeFields('7-0', 's-1'))).toEqual(
      subscribeRequestBytes({ deviceSessionId: 'ds-1', requestId: 's-1', timestampMs: 10_000, resumeAfterEventId: '7-0' }),
    );
  });

  it('learns the user and clock offset from a verified bootstrap and the resume point from client events', async () => {
    const clock = manualClock(40_000);
    const state = new DeviceSessionState({ deviceSessionId: 'ds-1', clock: clock.now });
    const trusted = await TrustedKeys.create([gatewayRaw]);
    const verifier = state.streamVerifier(trusted, 'sub-1');
    // Received at local 40 000 with the gateway at 50 000: the gateway runs 10 s ahead.
    const bootstrap = await state.accept(verifier, await signedEvent('sub-1'));
    expect(bootstrap.serverTime).toEqual({ serverTimeMs: 50_000, requestId: 'sub-1' });
    expect({ offset: state.clockOffsetMs, user: state.userId, last: state.lastEventId }).toEqual({ offset: 10_000, user: 'u-1', last: '' });
    clock.set(41_000);
    expect(state.now()).toBe(51_000);
    expect(state.commandFields('demo.echo', new Uint8Array(0), 'r').timestampMs).toBe(51_000);

    await state.accept(verifier, await signedEvent('sub-1', { eventId: '5-0', eventType: 'chat.message', deviceSessionId: '' }));
    expect(state.lastEventId).toBe('5-0');
    // An explicit arrival time wins over the clock.
    const second = state.streamVerifier(trusted, 'sub-2');
    await state.accept(second, await signedEvent('sub-2', { payload: encodeServerTime(60_000, 'sub-2') }), 59_000);
    expect(state.clockOffsetMs).toBe(1000);
    // The resume point survives a new stream's bootstrap (it has no event id).
    expect(state.lastEventId).toBe('5-0');
  });

  it('learns nothing from an event that cannot be trusted', async () => {
    const clock = manualClock(40_000);
    const state = new DeviceSessionState({ deviceSessionId: 'ds-1', clock: clock.now });
    const trusted = await TrustedKeys.create([gatewayRaw]);
    const forged = { ...(await signedEvent('sub-1')), userId: 'u-evil' };
    await expect(state.accept(state.streamVerifier(trusted, 'sub-1'), forged)).rejects.toThrow('event gateway.server_time has an invalid signature');
    expect({ offset: state.clockOffsetMs, user: state.userId }).toEqual({ offset: 0, user: undefined });

    const verifier = state.streamVerifier(trusted, 'sub-2');
    await state.accept(verifier, await signedEvent('sub-2'));
    await state.accept(verifier, await signedEvent('sub-2', { eventId: '3-0', eventType: 'chat.message' }));
    const tampered = { ...(await signedEvent('sub-2', { eventId: '4-0', eventType: 'chat.message' })), eventId: '9-0' };
    await expect(state.accept(verifier, tampered)).rejects.toThrow('event chat.message has an invalid signature');
    expect(state.lastEventId).toBe('3-0');
  });

  it('binds later streams to the user it learned (or was given)', async () => {
    const trusted = await TrustedKeys.create([gatewayRaw]);
    const state = new DeviceSessionState({ deviceSessionId: 'ds-1' });
    await state.accept(state.streamVerifier(trusted, 'sub-1'), await signedEvent('sub-1'));
    const next = state.streamVerifier(trusted, 'sub-2');
    await expect(state.accept(next, await signedEvent('sub-2', { userId: 'u-2' }))).rejects.toThrow(new GatewayBindingError('bootstrap is for user "u-2", not "u-1"'));

    const given = new DeviceSessionState({ deviceSessionId: 'ds-1', userId: 'u-9' });
    await expect(given.accept(given.streamVerifier(trusted, 'sub-3'), await signedEvent('sub-3'))).rejects.toThrow('bootstrap is for user "u-1", not "u-9"');
    expect({ user: given.userId, offset: given.clockOffsetMs }).toEqual({ user: 'u-9', offset: 0 });
  });
});

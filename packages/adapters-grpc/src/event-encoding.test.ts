import { describe, expect, it } from 'vitest';
import type { GatewayEvent as CoreGatewayEvent } from '@edge-gateway/core';
import { EdgeGatewayService, ExecuteCommandRequest, GatewayEvent } from './generated/edgegateway/v1/edge_gateway.js';
import { edgeGatewayServiceDefinition, encodeCommandResponseOnce, encodeGatewayEventOnce, wireGatewayEvent } from './event-encoding.js';
import { isMalformedMessage } from './request-decoding.js';

const event = (id: string): CoreGatewayEvent => ({
  eventId: id,
  eventType: 'orders.updated',
  userId: 'u-1',
  deviceSessionId: '',
  timestampMs: 1_700_000_000_123,
  payload: new Uint8Array([9, 8, 7]),
  signerKeyId: '0011223344556677',
  signature: new Uint8Array(64).fill(5),
});

describe('encode-once push events', () => {
  it('maps one core event to one wire message, whatever the number of streams', () => {
    const e = event('1700000000123-0');
    expect(wireGatewayEvent(e)).toBe(wireGatewayEvent(e));
    expect(wireGatewayEvent(event('1700000000123-0'))).not.toBe(wireGatewayEvent(e));
  });

  it('encodes exactly like the generated serializer, once per message', () => {
    const message = wireGatewayEvent(event('1700000000123-1'));
    const bytes = encodeGatewayEventOnce(message);
    expect(bytes.equals(EdgeGatewayService.subscribeEvents.responseSerialize(message))).toBe(true);
    expect(encodeGatewayEventOnce(message)).toBe(bytes);
    const decoded = GatewayEvent.decode(bytes);
    expect(decoded.eventId).toBe('1700000000123-1');
    expect(decoded.timestampMs).toBe(1_700_000_000_123);
    expect(Array.from(decoded.payload)).toEqual([9, 8, 7]);
  });

  it('keeps the generated definition otherwise', () => {
    expect(edgeGatewayServiceDefinition.subscribeEvents.path).toBe(EdgeGatewayService.subscribeEvents.path);
    expect(edgeGatewayServiceDefinition.subscribeEvents.responseSerialize).toBe(encodeGatewayEventOnce);
    expect(edgeGatewayServiceDefinition.executeCommand.path).toBe(EdgeGatewayService.executeCommand.path);
    expect(edgeGatewayServiceDefinition.executeCommand.responseSerialize).toBe(encodeCommandResponseOnce);
  });

  it('encodes a command response like the generated serializer; the same object again (measured, then sent) without encoding twice', () => {
    const response = { requestId: 'r-1', resultCode: 'ok', payload: Buffer.from('result'), timestampMs: 1_700_000_000_000, signerKeyId: '0011223344556677', signature: Buffer.alloc(64, 3) };
    const bytes = encodeCommandResponseOnce(response);
    expect(bytes.equals(EdgeGatewayService.executeCommand.responseSerialize(response))).toBe(true);
    expect(encodeCommandResponseOnce(response)).toBe(bytes);
    const other = { ...response, requestId: 'r-2' };
    expect(encodeCommandResponseOnce(other).equals(EdgeGatewayService.executeCommand.responseSerialize(other))).toBe(true);
  });

  it('decodes requests like the generated definition, and an undecodable one into the malformed marker instead of throwing', () => {
    const request = { deviceSessionId: 'ds', messageType: 'a.b', requestId: 'r', timestampMs: 5, payload: Buffer.from('p'), signature: Buffer.alloc(64) };
    const bytes = Buffer.from(ExecuteCommandRequest.encode(request).finish());
    expect(edgeGatewayServiceDefinition.executeCommand.requestDeserialize(bytes)).toEqual(EdgeGatewayService.executeCommand.requestDeserialize(bytes));
    const beyond2to53 = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
    const common = [
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // a length far past the end
      Buffer.from([0x0a, 0x05, 0x61]), // truncated string
      Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // a varint longer than 10 bytes
    ];
    const cases = [
      ['executeCommand', [...common, Buffer.from([0x20, ...beyond2to53])]], // timestamp_ms = 4
      ['subscribeEvents', [...common, Buffer.from([0x18, ...beyond2to53])]], // timestamp_ms = 3
    ] as const;
    for (const [method, bodies] of cases) {
      for (const body of bodies) {
        expect(() => EdgeGatewayService[method].requestDeserialize(body), `${method} ${body.toString('hex')}`).toThrow();
        expect(isMalformedMessage(edgeGatewayServiceDefinition[method].requestDeserialize(body)), `${method} ${body.toString('hex')}`).toBe(true);
      }
    }
    expect(isMalformedMessage(edgeGatewayServiceDefinition.executeCommand.requestDeserialize(bytes))).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import type { GatewayEvent as CoreGatewayEvent } from '@edge-gateway/core';
import { EdgeGatewayService, GatewayEvent } from './generated/edgegateway/v1/edge_gateway.js';
import { edgeGatewayServiceDefinition, encodeGatewayEventOnce, wireGatewayEvent } from './event-encoding.js';

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
    expect(edgeGatewayServiceDefinition.executeCommand).toBe(EdgeGatewayService.executeCommand);
  });
});

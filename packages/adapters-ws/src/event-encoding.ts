import type { GatewayEvent } from '@edge-gateway/core';
import { encodeGatewayEvent } from '@edge-gateway/protocol';

/**
 * An encoder of push events that encodes each event object once, however many streams it is
 * written to. A client event is one object shared by every stream it targets (the core signs
 * it once); before, each stream encoded it again (protobuf of the whole payload per stream).
 * The cache is weak, so an entry goes with its event; the last event is also kept apart
 * because an event is written to its streams one after another, so all but the first of its
 * deliveries hit it without a WeakMap lookup (as the gRPC adapter's `encodeGatewayEventOnce`).
 * Each stream still frames the bytes with its own call id (one copy).
 */
export function createEventEncoder(encode: (event: GatewayEvent) => Uint8Array = encodeGatewayEvent): (event: GatewayEvent) => Uint8Array {
  const encodings = new WeakMap<GatewayEvent, Uint8Array>();
  let lastEvent: GatewayEvent | undefined;
  let lastBytes: Uint8Array | undefined;
  return (event) => {
    if (event === lastEvent && lastBytes !== undefined) return lastBytes;
    let bytes = encodings.get(event);
    if (bytes === undefined) {
      bytes = encode(event);
      encodings.set(event, bytes);
    }
    lastEvent = event;
    lastBytes = bytes;
    return bytes;
  };
}

/** The process's encoder, shared by every connection (an event reaches streams on many connections). */
export const encodeEventOnce = createEventEncoder();

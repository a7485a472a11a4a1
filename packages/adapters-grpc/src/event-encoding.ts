import type { GatewayEvent as CoreGatewayEvent } from '@edge-gateway/core';
import { EdgeGatewayService, ExecuteCommandRequest, GatewayEvent, SubscribeEventsRequest } from './generated/edgegateway/v1/edge_gateway.js';
import { fromGatewayEvent } from './message-mapping.js';
import { tolerantDecoder } from './request-decoding.js';

/*
 * A client event is one object shared by every stream it targets. These caches make its wire
 * message and its protobuf encoding happen once per event instead of once per stream. Both are
 * weak: entries go with their event.
 */
const wireMessages = new WeakMap<CoreGatewayEvent, GatewayEvent>();
const encodings = new WeakMap<GatewayEvent, Buffer>();

/** The wire message of `event`; the same object for every stream the event is written to. */
export function wireGatewayEvent(event: CoreGatewayEvent): GatewayEvent {
  let message = wireMessages.get(event);
  if (message === undefined) {
    message = fromGatewayEvent(event);
    wireMessages.set(event, message);
  }
  return message;
}

/** The protobuf encoding of a wire `GatewayEvent`, computed once per message object. */
export function encodeGatewayEventOnce(message: GatewayEvent): Buffer {
  let bytes = encodings.get(message);
  if (bytes === undefined) {
    const out = GatewayEvent.encode(message).finish();
    bytes = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    encodings.set(message, bytes);
  }
  return bytes;
}

/**
 * The generated `EdgeGatewayService` definition with a `SubscribeEvents` response serializer
 * that encodes each message object once (see {@link encodeGatewayEventOnce}), and request
 * decoders that turn an undecodable message into the malformed marker the handlers answer
 * `INVALID_ARGUMENT` (see request-decoding.ts); `startGrpcServer` registers this one.
 */
export const edgeGatewayServiceDefinition = {
  ...EdgeGatewayService,
  executeCommand: {
    ...EdgeGatewayService.executeCommand,
    requestDeserialize: tolerantDecoder((bytes: Buffer) => ExecuteCommandRequest.decode(bytes)),
  },
  subscribeEvents: {
    ...EdgeGatewayService.subscribeEvents,
    requestDeserialize: tolerantDecoder((bytes: Buffer) => SubscribeEventsRequest.decode(bytes)),
    responseSerialize: encodeGatewayEventOnce,
  },
} as const;

import type { GatewayEvent as CoreGatewayEvent } from '@edge-gateway/core';
import { EdgeGatewayService, ExecuteCommandRequest, ExecuteCommandResponse, GatewayEvent, SubscribeEventsRequest } from './generated/edgegateway/v1/edge_gateway.js';
import { fromGatewayEvent } from './message-mapping.js';
import { tolerantDecoder } from './request-decoding.js';

/*
 * A client event is one object shared by every stream it targets. These caches make its wire
 * message and its protobuf encoding happen once per event instead of once per stream. Both are
 * weak: entries go with their event.
 */
const wireMessages = new WeakMap<CoreGatewayEvent, GatewayEvent>();
const encodings = new WeakMap<GatewayEvent, Buffer>();

// The last entry of each cache: an event is written to its streams one after another, so all
// but the first of its deliveries hit these (cheaper than a WeakMap lookup per delivery). They
// hold one event and its bytes until the next one.
let lastEvent: CoreGatewayEvent | undefined;
let lastMessage: GatewayEvent | undefined;
let lastEncoded: GatewayEvent | undefined;
let lastBytes: Buffer | undefined;

/** The wire message of `event`; the same object for every stream the event is written to. */
export function wireGatewayEvent(event: CoreGatewayEvent): GatewayEvent {
  if (event === lastEvent && lastMessage !== undefined) return lastMessage;
  let message = wireMessages.get(event);
  if (message === undefined) {
    message = fromGatewayEvent(event);
    wireMessages.set(event, message);
  }
  lastEvent = event;
  lastMessage = message;
  return message;
}

/** The protobuf encoding of a wire `GatewayEvent`, computed once per message object. */
export function encodeGatewayEventOnce(message: GatewayEvent): Buffer {
  if (message === lastEncoded && lastBytes !== undefined) return lastBytes;
  let bytes = encodings.get(message);
  if (bytes === undefined) {
    const out = GatewayEvent.encode(message).finish();
    bytes = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    encodings.set(message, bytes);
  }
  lastEncoded = message;
  lastBytes = bytes;
  return bytes;
}

let lastResponse: ExecuteCommandResponse | undefined;
let lastResponseBytes: Buffer | undefined;

/**
 * The protobuf encoding of a command response; encoding the same object again right after (the
 * connection tracking measures a message, then grpc-js serializes it) returns the same bytes.
 */
export function encodeCommandResponseOnce(message: ExecuteCommandResponse): Buffer {
  if (message === lastResponse && lastResponseBytes !== undefined) return lastResponseBytes;
  const out = ExecuteCommandResponse.encode(message).finish();
  lastResponse = message;
  lastResponseBytes = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  return lastResponseBytes;
}

/**
 * The generated `EdgeGatewayService` definition with response serializers that encode each
 * message object once (see {@link encodeGatewayEventOnce}, {@link encodeCommandResponseOnce}), and request
 * decoders that turn an undecodable message into the malformed marker the handlers answer
 * `INVALID_ARGUMENT` (see request-decoding.ts); `startGrpcServer` registers this one.
 */
export const edgeGatewayServiceDefinition = {
  ...EdgeGatewayService,
  executeCommand: {
    ...EdgeGatewayService.executeCommand,
    requestDeserialize: tolerantDecoder((bytes: Buffer) => ExecuteCommandRequest.decode(bytes)),
    responseSerialize: encodeCommandResponseOnce,
  },
  subscribeEvents: {
    ...EdgeGatewayService.subscribeEvents,
    requestDeserialize: tolerantDecoder((bytes: Buffer) => SubscribeEventsRequest.decode(bytes)),
    responseSerialize: encodeGatewayEventOnce,
  },
} as const;

import type {
  CommandRequest,
  CommandResult,
  DownstreamCommand as CoreDownstreamCommand,
  DownstreamResult as CoreDownstreamResult,
  GatewayEvent as CoreGatewayEvent,
  SubscribeRequest,
} from '@edge-gateway/core';
import type { DownstreamCommand, DownstreamResult } from './generated/edgegateway/downstream/v1/command_handler.js';
import type {
  ExecuteCommandRequest,
  ExecuteCommandResponse,
  GatewayEvent,
  SubscribeEventsRequest,
} from './generated/edgegateway/v1/edge_gateway.js';

// Bytes cross the boundary without copying: ts-proto decodes into Buffers (Uint8Array
// subclasses) and the core only reads them.
const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** Wire `ExecuteCommandRequest` → core `CommandRequest`. */
export function toCommandRequest(message: ExecuteCommandRequest): CommandRequest {
  return {
    deviceSessionId: message.deviceSessionId,
    messageType: message.messageType,
    requestId: message.requestId,
    timestampMs: message.timestampMs,
    payload: message.payload,
    signature: message.signature,
  };
}

/** Core `CommandRequest` → wire `ExecuteCommandRequest`. */
export function fromCommandRequest(request: CommandRequest): ExecuteCommandRequest {
  return {
    deviceSessionId: request.deviceSessionId,
    messageType: request.messageType,
    requestId: request.requestId,
    timestampMs: request.timestampMs,
    payload: asBuffer(request.payload),
    signature: asBuffer(request.signature),
  };
}

/** Core `CommandResult` → wire `ExecuteCommandResponse`. */
export function fromCommandResult(result: CommandResult): ExecuteCommandResponse {
  return {
    requestId: result.requestId,
    resultCode: result.resultCode,
    payload: asBuffer(result.payload),
    timestampMs: result.timestampMs,
    signerKeyId: result.signerKeyId,
    signature: asBuffer(result.signature),
  };
}

/** Wire `ExecuteCommandResponse` → core `CommandResult`. */
export function toCommandResult(message: ExecuteCommandResponse): CommandResult {
  return {
    requestId: message.requestId,
    resultCode: message.resultCode,
    payload: message.payload,
    timestampMs: message.timestampMs,
    signerKeyId: message.signerKeyId,
    signature: message.signature,
  };
}

/** Wire `SubscribeEventsRequest` → core `SubscribeRequest`. */
export function toSubscribeRequest(message: SubscribeEventsRequest): SubscribeRequest {
  return {
    deviceSessionId: message.deviceSessionId,
    requestId: message.requestId,
    timestampMs: message.timestampMs,
    resumeAfterEventId: message.resumeAfterEventId,
    signature: message.signature,
  };
}

/** Core `SubscribeRequest` → wire `SubscribeEventsRequest`. */
export function fromSubscribeRequest(request: SubscribeRequest): SubscribeEventsRequest {
  return {
    deviceSessionId: request.deviceSessionId,
    requestId: request.requestId,
    timestampMs: request.timestampMs,
    resumeAfterEventId: request.resumeAfterEventId,
    signature: asBuffer(request.signature),
  };
}

/** Core `GatewayEvent` → wire `GatewayEvent`. */
export function fromGatewayEvent(event: CoreGatewayEvent): GatewayEvent {
  return {
    eventId: event.eventId,
    eventType: event.eventType,
    userId: event.userId,
    deviceSessionId: event.deviceSessionId,
    timestampMs: event.timestampMs,
    payload: asBuffer(event.payload),
    signerKeyId: event.signerKeyId,
    signature: asBuffer(event.signature),
  };
}

/** Wire `GatewayEvent` → core `GatewayEvent`. */
export function toGatewayEvent(message: GatewayEvent): CoreGatewayEvent {
  return {
    eventId: message.eventId,
    eventType: message.eventType,
    userId: message.userId,
    deviceSessionId: message.deviceSessionId,
    timestampMs: message.timestampMs,
    payload: message.payload,
    signerKeyId: message.signerKeyId,
    signature: message.signature,
  };
}

/** Core `DownstreamCommand` → wire `DownstreamCommand`. */
export function fromDownstreamCommand(command: CoreDownstreamCommand): DownstreamCommand {
  return {
    messageType: command.messageType,
    userId: command.userId,
    deviceSessionId: command.deviceSessionId,
    requestId: command.requestId,
    payload: asBuffer(command.payload),
  };
}

/** Wire `DownstreamResult` → core `DownstreamResult`. */
export function toDownstreamResult(message: DownstreamResult): CoreDownstreamResult {
  return { resultCode: message.resultCode, payload: message.payload };
}

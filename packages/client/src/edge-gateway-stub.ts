import { Client, Metadata, type CallOptions, type ClientReadableStream, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import {
  decodeExecuteCommandRequest,
  decodeExecuteCommandResponse,
  decodeGatewayEvent,
  decodeSubscribeEventsRequest,
  encodeExecuteCommandRequest,
  encodeExecuteCommandResponse,
  encodeGatewayEvent,
  encodeSubscribeEventsRequest,
  type ExecuteCommandRequest,
  type ExecuteCommandResponse,
  type GatewayEvent,
  type SubscribeEventsRequest,
} from '@edge-gateway/protocol';

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * `edgegateway.v1.EdgeGateway` as a grpc-js service definition whose codecs are the protocol
 * package's (no generated code, no server package): the same bytes as the gateway's stubs.
 */
export const EdgeGatewayService = {
  executeCommand: {
    path: '/edgegateway.v1.EdgeGateway/ExecuteCommand',
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: ExecuteCommandRequest): Buffer => asBuffer(encodeExecuteCommandRequest(m)),
    requestDeserialize: (b: Buffer): ExecuteCommandRequest => decodeExecuteCommandRequest(b),
    responseSerialize: (m: ExecuteCommandResponse): Buffer => asBuffer(encodeExecuteCommandResponse(m)),
    responseDeserialize: (b: Buffer): ExecuteCommandResponse => decodeExecuteCommandResponse(b),
    originalName: 'ExecuteCommand',
  },
  subscribeEvents: {
    path: '/edgegateway.v1.EdgeGateway/SubscribeEvents',
    requestStream: false,
    responseStream: true,
    requestSerialize: (m: SubscribeEventsRequest): Buffer => asBuffer(encodeSubscribeEventsRequest(m)),
    requestDeserialize: (b: Buffer): SubscribeEventsRequest => decodeSubscribeEventsRequest(b),
    responseSerialize: (m: GatewayEvent): Buffer => asBuffer(encodeGatewayEvent(m)),
    responseDeserialize: (b: Buffer): GatewayEvent => decodeGatewayEvent(b),
    originalName: 'SubscribeEvents',
  },
} as const;

/** A grpc-js client of `edgegateway.v1.EdgeGateway` on {@link EdgeGatewayService}. */
export class EdgeGatewayGrpcClient extends Client {
  executeCommand(
    request: ExecuteCommandRequest,
    metadata: Metadata,
    options: CallOptions,
    callback: (error: ServiceError | null, response: ExecuteCommandResponse) => void,
  ): ClientUnaryCall {
    const method = EdgeGatewayService.executeCommand;
    // grpc-js passes a response exactly when there is no error.
    return this.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, metadata, options, (error, response) =>
      callback(error, response as ExecuteCommandResponse),
    );
  }

  subscribeEvents(request: SubscribeEventsRequest, metadata: Metadata = new Metadata(), options: CallOptions = {}): ClientReadableStream<GatewayEvent> {
    const method = EdgeGatewayService.subscribeEvents;
    return this.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, request, metadata, options);
  }
}

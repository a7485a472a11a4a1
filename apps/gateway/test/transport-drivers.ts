import { randomUUID, sign } from 'node:crypto';
import { connect } from 'node:http2';
import { Metadata, credentials, status as GrpcStatus, type ClientReadableStream } from '@grpc/grpc-js';
import { WebSocket } from 'ws';
import { EdgeGatewayClient, type GatewayEvent } from '@edge-gateway/adapters-grpc/generated';
import { commandRequestBytes, subscribeRequestBytes } from '@edge-gateway/client';
import { WebGatewayClient, importDevicePrivateKey, type WebSocketConstructor } from '@edge-gateway/client-web';
import {
  FrameTypes,
  WEBSOCKET_PATH,
  WEBSOCKET_SUBPROTOCOL,
  decodeFrame,
  decodeGatewayEvent,
  decodeStatus,
  encodeExecuteCommandRequest,
  encodeFrame,
  encodeSubscribeEventsRequest,
  encodeTimedExecute,
  type CallStatus,
} from '@edge-gateway/protocol';
import { clientFor, type Device } from '@edge-gateway/test-utils/system-support';

/** What every scenario needs from a device client, whatever the transport. */
export interface ScenarioClient {
  execute(messageType: string, payload: Uint8Array, options?: { requestId?: string; timeoutMs?: number }): Promise<{ requestId: string; resultCode: string; payload: Uint8Array }>;
  /** Verified events; the iteration throws an error with the status `code` and `details`. */
  subscribe(options?: { resumeAfterEventId?: string; signal?: AbortSignal }): AsyncIterator<{ eventId: string; eventType: string; userId: string; payload: Uint8Array }>;
  close(): void;
}

/** A push stream whose reader stopped reading after the bootstrap (a stalled device). */
export interface StalledStream {
  readonly bootstrapType: string;
  /** Starts reading again; resolves the status the stream ended with. */
  resumeAndWaitForStatus(): Promise<CallStatus>;
  close(): void;
}

/** One transport of the gateway, as the scenarios drive it. */
export interface TransportDriver {
  readonly name: 'grpc' | 'websocket';
  /** Status code numbers are the same on both transports (SPEC §4). */
  client(device: Device, addresses: GatewayAddresses, gatewayKey: Uint8Array): Promise<ScenarioClient>;
  stalled(device: Device, addresses: GatewayAddresses): Promise<StalledStream>;
  /**
   * One signed command with a per-call timeout on a bare connection (no client library), so
   * the status is the gateway's own, not a client's copy of it.
   */
  bareExecute(device: Device, addresses: GatewayAddresses, messageType: string, requestId: string, timeoutMs: number): Promise<CallStatus>;
}

export interface GatewayAddresses {
  readonly grpc: string;
  readonly websocket?: string | undefined;
}

function signedSubscribe(device: Device) {
  const fields = { deviceSessionId: device.deviceSessionId, requestId: randomUUID(), timestampMs: Date.now(), resumeAfterEventId: '' };
  return { ...fields, signature: sign(null, subscribeRequestBytes(fields), device.privateKey) };
}

function signedCommand(device: Device, messageType: string, requestId: string): Uint8Array {
  const fields = { deviceSessionId: device.deviceSessionId, messageType, requestId, timestampMs: Date.now(), payload: new TextEncoder().encode(requestId) };
  return encodeExecuteCommandRequest({ ...fields, signature: sign(null, commandRequestBytes(fields), device.privateKey) });
}

export const grpcDriver: TransportDriver = {
  name: 'grpc',
  async client(device, addresses, gatewayKey) {
    const client = clientFor(device, addresses.grpc, gatewayKey);
    return {
      execute: (type, payload, options) => client.execute(type, payload, options),
      subscribe: (options) => client.subscribe(options)[Symbol.asyncIterator](),
      close: () => client.close(),
    };
  },
  async stalled(device, addresses) {
    // Its own connection, as a real device has (a shared HTTP/2 connection would stall both).
    const raw = new EdgeGatewayClient(addresses.grpc, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const call: ClientReadableStream<GatewayEvent> = raw.subscribeEvents(signedSubscribe(device), new Metadata());
    const status = new Promise<CallStatus>((resolve) => {
      call.on('error', (e: { code: number; details: string }) => resolve({ code: e.code, details: e.details }));
      call.on('status', (s: { code: number; details: string }) => {
        if (s.code !== GrpcStatus.OK) resolve({ code: s.code, details: s.details });
      });
    });
    const first = await new Promise<GatewayEvent>((resolve) => call.once('data', resolve));
    call.pause();
    return {
      bootstrapType: first.eventType,
      resumeAndWaitForStatus: () => {
        call.resume();
        call.on('data', () => undefined);
        return status;
      },
      close: () => raw.close(),
    };
  },
  bareExecute(device, addresses, messageType, requestId, timeoutMs) {
    // HTTP/2 by hand: the deadline travels as `grpc-timeout`, and no client-side timer answers first.
    return new Promise((resolve, reject) => {
      const session = connect(`http://${addresses.grpc}`);
      session.on('error', reject);
      const message = signedCommand(device, messageType, requestId);
      const stream = session.request({
        ':method': 'POST',
        ':path': '/edgegateway.v1.EdgeGateway/ExecuteCommand',
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${timeoutMs}m`,
      });
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, 5);
      let headers: Record<string, unknown> = {};
      stream.on('response', (h) => (headers = { ...h }));
      stream.on('trailers', (t) => (headers = { ...headers, ...t }));
      stream.on('data', () => undefined);
      stream.on('close', () => {
        session.close();
        resolve({ code: Number(headers['grpc-status']), details: decodeURIComponent(String(headers['grpc-message'] ?? '')) });
      });
      stream.end(frame);
    });
  },
};

function websocketUrl(addresses: GatewayAddresses): string {
  if (addresses.websocket === undefined) throw new Error('the gateway was started without GATEWAY_WEBSOCKET_ADDR');
  return `ws://${addresses.websocket}${WEBSOCKET_PATH}`;
}

export const websocketDriver: TransportDriver = {
  name: 'websocket',
  async client(device, addresses, gatewayKey) {
    const client = await WebGatewayClient.connect({
      url: websocketUrl(addresses),
      deviceSessionId: device.deviceSessionId,
      userId: device.userId,
      privateKey: await importDevicePrivateKey(device.privateKey.export({ format: 'der', type: 'pkcs8' })),
      gatewayPublicKeys: [gatewayKey],
      WebSocket: WebSocket as unknown as WebSocketConstructor,
    });
    return {
      execute: (type, payload, options) =>
        client.execute(type, payload, {
          ...(options?.requestId === undefined ? {} : { requestId: options.requestId }),
          ...(options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
        }),
      subscribe: (options) => client.subscribe(options)[Symbol.asyncIterator](),
      close: () => client.close(),
    };
  },
  async stalled(device, addresses) {
    const ws = new WebSocket(websocketUrl(addresses), WEBSOCKET_SUBPROTOCOL, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    let onStatus!: (status: CallStatus) => void;
    const status = new Promise<CallStatus>((resolve) => (onStatus = resolve));
    let onFirst!: (type: string) => void;
    const first = new Promise<string>((resolve) => (onFirst = resolve));
    ws.on('message', (data: Buffer) => {
      const frame = decodeFrame(new Uint8Array(data));
      if (frame.type === FrameTypes.event) onFirst(decodeGatewayEvent(frame.body).eventType);
      if (frame.type === FrameTypes.status) onStatus(decodeStatus(frame.body));
    });
    ws.send(encodeFrame(FrameTypes.subscribe, 1, encodeSubscribeEventsRequest(signedSubscribe(device))));
    const bootstrapType = await first;
    // Stop reading the socket: the gateway's socket buffer fills, then the hub queue.
    ws.pause();
    return {
      bootstrapType,
      resumeAndWaitForStatus: () => {
        ws.resume();
        return status;
      },
      close: () => ws.close(),
    };
  },
  async bareExecute(device, addresses, messageType, requestId, timeoutMs) {
    const ws = new WebSocket(websocketUrl(addresses), WEBSOCKET_SUBPROTOCOL, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const status = new Promise<CallStatus>((resolve) =>
      ws.on('message', (data: Buffer) => {
        const frame = decodeFrame(new Uint8Array(data));
        if (frame.type === FrameTypes.status) resolve(decodeStatus(frame.body));
      }),
    );
    ws.send(encodeFrame(FrameTypes.executeWithTimeout, 1, encodeTimedExecute(timeoutMs, signedCommand(device, messageType, requestId))));
    try {
      return await status;
    } finally {
      ws.close();
    }
  },
};

export const TRANSPORTS: readonly TransportDriver[] = [grpcDriver, websocketDriver];

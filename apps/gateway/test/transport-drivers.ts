import { randomUUID, sign } from 'node:crypto';
import { Metadata, credentials, status as GrpcStatus, type ClientReadableStream } from '@grpc/grpc-js';
import { WebSocket } from 'ws';
import { EdgeGatewayClient, type GatewayEvent } from '@edge-gateway/adapters-grpc/generated';
import { subscribeRequestBytes } from '@edge-gateway/client';
import { WebGatewayClient, importDevicePrivateKey, type WebSocketConstructor } from '@edge-gateway/client-web';
import {
  FrameTypes,
  WEBSOCKET_PATH,
  WEBSOCKET_SUBPROTOCOL,
  decodeFrame,
  decodeGatewayEvent,
  decodeStatus,
  encodeFrame,
  encodeSubscribeEventsRequest,
  type CallStatus,
} from '@edge-gateway/protocol';
import { clientFor, type Device } from './system-support.js';

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
}

export interface GatewayAddresses {
  readonly grpc: string;
  readonly websocket?: string | undefined;
}

function signedSubscribe(device: Device) {
  const fields = { deviceSessionId: device.deviceSessionId, requestId: randomUUID(), timestampMs: Date.now(), resumeAfterEventId: '' };
  return { ...fields, signature: sign(null, subscribeRequestBytes(fields), device.privateKey) };
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
      execute: (type, payload, options) => client.execute(type, payload, options?.requestId === undefined ? {} : { requestId: options.requestId }),
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
};

export const TRANSPORTS: readonly TransportDriver[] = [grpcDriver, websocketDriver];

import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { Metadata, credentials, type CallOptions, type ClientReadableStream, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import {
  Ed25519ResponseSigner,
  GatewayMetrics,
  createGatewayCore,
  commandRequestBytes,
  rawPublicKey,
  subscribeRequestBytes,
  type CommandRouter,
  type ConnectionLimits,
  type GatewayCore,
  type PushHub,
  type RawFields,
  type SessionEventsHandler,
} from '@edge-gateway/core';
import { InMemoryEventStream, InMemoryReplayStore, InMemorySessionStore } from '@edge-gateway/core/memory';
import {
  EdgeGatewayClient,
  type ExecuteCommandRequest,
  type ExecuteCommandResponse,
  type GatewayEvent,
  type SubscribeEventsRequest,
} from '../src/generated/index.js';
import { startGrpcServer, type GrpcServerHandle } from '../src/index.js';
import { clientEventFields, sessionRecordFields } from '@edge-gateway/protocol';

/** A device known to the in-memory session store. */
export interface Device {
  readonly deviceSessionId: string;
  readonly userId: string;
  readonly privateKey: KeyObject;
  /** Raw 32-byte public key, base64 (as in the session record). */
  readonly publicKeyBase64: string;
}

export interface GatewayFixtureOptions {
  readonly bufferSize?: number;
  readonly maxPayloadBytes?: number;
  readonly router?: CommandRouter;
  readonly metrics?: GatewayMetrics;
  readonly downstreamTimeoutMs?: number;
  readonly connectionLimits?: Partial<ConnectionLimits>;
}

let seq = 0;
/** A unique id for this test process. */
export const uniqueId = (label: string): string => `${label}-${process.pid}-${(seq += 1)}`;

/**
 * The whole core (in-memory stores, real PushHub and services) behind a real grpc-js
 * server on 127.0.0.1:0, plus a real generated client connected to it.
 */
export class GatewayFixture {
  readonly signer = new Ed25519ResponseSigner(generateKeyPairSync('ed25519').privateKey);
  readonly sessionStore = new InMemorySessionStore();
  readonly replay = new InMemoryReplayStore();
  readonly clientEvents = new InMemoryEventStream();
  readonly metrics: GatewayMetrics;
  /** The core as the binary assembles it (`createGatewayCore`). */
  readonly core: GatewayCore;
  readonly hub: PushHub;
  readonly sessionEvents: SessionEventsHandler;
  server!: GrpcServerHandle;
  client!: EdgeGatewayClient;

  private constructor(readonly options: GatewayFixtureOptions) {
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.core = createGatewayCore(
      {
        sessions: this.sessionStore,
        replay: this.replay,
        history: this.clientEvents,
        signer: this.signer,
        metrics: this.metrics,
        ...(options.router === undefined ? {} : { router: options.router }),
      },
      {
        sessionCacheMaxEntries: 1000,
        sessionCacheTtlMs: 60_000,
        pushStreamBuffer: options.bufferSize ?? 64,
        maxPayloadBytes: options.maxPayloadBytes,
        downstreamTimeoutMs: options.downstreamTimeoutMs,
      },
    );
    this.hub = this.core.hub;
    this.sessionEvents = this.core.sessionEvents;
    this.clientEvents.subscribe(this.core.clientEvents);
  }

  static async start(options: GatewayFixtureOptions = {}): Promise<GatewayFixture> {
    const fixture = new GatewayFixture(options);
    fixture.server = await startGrpcServer({
      address: '127.0.0.1:0',
      core: fixture.core,
      maxPayloadBytes: options.maxPayloadBytes ?? 1024 * 1024,
      metrics: fixture.metrics,
      ...(options.connectionLimits === undefined ? {} : { connectionLimits: options.connectionLimits }),
    });
    fixture.client = fixture.newClient();
    return fixture;
  }

  /** Another client with its own channel (separate HTTP/2 connection). */
  newClient(): EdgeGatewayClient {
    return new EdgeGatewayClient(this.server.address, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  /** Adds a session record to the store. */
  addDevice(overrides: { userId?: string; status?: 'active' | 'revoked'; deviceSessionId?: string } = {}): Device {
    const { privateKey } = generateKeyPairSync('ed25519');
    const device: Device = {
      deviceSessionId: overrides.deviceSessionId ?? uniqueId('ds'),
      userId: overrides.userId ?? uniqueId('user'),
      privateKey,
      publicKeyBase64: rawPublicKey(privateKey).toString('base64'),
    };
    this.sessionStore.set(device.deviceSessionId, this.recordOf(device, overrides.status ?? 'active'));
    return device;
  }

  /** The §5.1 fields of a device's record/snapshot. */
  recordOf(device: Device, status: 'active' | 'revoked'): RawFields {
    return sessionRecordFields({
      ...device,
      status,
      clientPublicKey: Buffer.from(device.publicKeyBase64, 'base64'),
      ...(status === 'revoked' ? { revokedAtMs: Date.now() } : {}),
    });
  }

  /** Applies a revoked snapshot as the session-events consumer would. */
  revoke(device: Device): void {
    this.sessionEvents.handle({ id: `${Date.now()}-0`, fields: this.recordOf(device, 'revoked') });
  }

  /** Appends a client event to the in-memory client-events stream. */
  publish(userId: string, eventType: string, payload: Uint8Array, deviceSessionId?: string): string {
    return this.clientEvents.append(clientEventFields({ userId, eventType, payload, ...(deviceSessionId === undefined ? {} : { deviceSessionId }) }));
  }

  async close(): Promise<void> {
    this.client.close();
    this.hub.close();
    await this.server.close(1000);
  }
}

/** A correctly signed ExecuteCommandRequest; `overrides` are applied before signing. */
export function signedCommand(device: Device, overrides: Partial<Omit<ExecuteCommandRequest, 'signature'>> = {}): ExecuteCommandRequest {
  const fields = {
    deviceSessionId: device.deviceSessionId,
    messageType: 'demo.echo',
    requestId: uniqueId('req'),
    timestampMs: Date.now(),
    payload: Buffer.from('hello'),
    ...overrides,
  };
  return { ...fields, signature: sign(null, commandRequestBytes(fields), device.privateKey) };
}

/** A correctly signed SubscribeEventsRequest. */
export function signedSubscribe(device: Device, overrides: Partial<Omit<SubscribeEventsRequest, 'signature'>> = {}): SubscribeEventsRequest {
  const fields = {
    deviceSessionId: device.deviceSessionId,
    requestId: uniqueId('sub'),
    timestampMs: Date.now(),
    resumeAfterEventId: '',
    ...overrides,
  };
  return { ...fields, signature: sign(null, subscribeRequestBytes(fields), device.privateKey) };
}

/** Unary ExecuteCommand as a promise; rejects with the grpc-js `ServiceError`. */
export function execute(
  client: EdgeGatewayClient,
  request: ExecuteCommandRequest,
  options: Partial<CallOptions> = {},
  metadata: Metadata = new Metadata(),
): Promise<ExecuteCommandResponse> {
  return new Promise((resolve, reject) => {
    client.executeCommand(request, metadata, options, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

/** The status of a failed unary call (fails the test if the call succeeded). */
export async function statusOf(call: Promise<unknown>): Promise<Pick<StatusObject, 'code' | 'details'>> {
  try {
    await call;
  } catch (error) {
    const { code, details } = error as ServiceError;
    return { code, details };
  }
  throw new Error('expected the call to fail');
}

/** A server stream being read: its events so far and its final status. */
export class StreamReader {
  readonly events: GatewayEvent[] = [];
  readonly status: Promise<Pick<StatusObject, 'code' | 'details'>>;
  private waiters: Array<() => void> = [];

  constructor(readonly call: ClientReadableStream<GatewayEvent>) {
    call.on('data', (event: GatewayEvent) => {
      this.events.push(event);
      for (const wake of this.waiters.splice(0)) wake();
    });
    // grpc-js emits 'error' for a non-OK status; 'status' carries it in every case.
    call.on('error', () => undefined);
    this.status = new Promise((resolve) => {
      call.on('status', (s: StatusObject) => {
        resolve({ code: s.code, details: s.details });
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
  }

  /** Waits until `count` events arrived (or fails after `timeoutMs`). */
  async waitForEvents(count: number, timeoutMs = 5000): Promise<GatewayEvent[]> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    void this.status.then(() => (ended = true));
    while (this.events.length < count) {
      if (ended) throw new Error(`stream ended after ${this.events.length} of ${count} events`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`only ${this.events.length} of ${count} events within ${timeoutMs}ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.events.slice(0, count);
  }
}

/** Opens SubscribeEvents and starts reading it. */
export function subscribe(client: EdgeGatewayClient, request: SubscribeEventsRequest, metadata: Metadata = new Metadata()): StreamReader {
  return new StreamReader(client.subscribeEvents(request, metadata));
}

/** Polls `fn` until it is truthy (a deadline, not a sleep, bounds it). */
export async function pollUntil<T>(fn: () => T, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Server, ServerCredentials, type ChannelOptions, type Metadata, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { createClient } from 'redis';
import { CommandHandlerService, type DownstreamCommand, type DownstreamResult } from '@edge-gateway/adapters-grpc/generated';
import { GatewayClient, type VerifiedEvent } from '@edge-gateway/client';
import { type RedisServerHandle } from './redis-server.js';
import { waitFor } from './wait-for.js';
import { clientEventFields, sessionRecordFields } from '@edge-gateway/protocol';

/** A device session: its key pair and ids. */
export interface Device {
  readonly deviceSessionId: string;
  readonly userId: string;
  readonly privateKey: KeyObject;
  readonly publicKeyBase64: string;
}

let counter = 0;
export function newDevice(userId: string, label = 'ds'): Device {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  counter += 1;
  return {
    deviceSessionId: `${label}-${process.pid}-${counter}`,
    userId,
    privateKey,
    publicKeyBase64: der.subarray(der.length - 32).toString('base64'),
  };
}

/** A plain node-redis connection playing the auth service and the event publishers. */
export async function connectRedis(server: RedisServerHandle) {
  const client = createClient({ socket: { host: '127.0.0.1', port: server.port, reconnectStrategy: false }, password: server.password });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}
export type RawRedis = Awaited<ReturnType<typeof connectRedis>>;

/**
 * Writes the session record, then appends the matching snapshot (the auth service's order).
 * `durable`: then waits until a replica acknowledged both (`WAIT 1`, SPEC §5.1), so a failover
 * cannot lose the session; throws when none did within 10 s.
 */
export async function writeSession(
  redis: RawRedis,
  device: Device,
  status: 'active' | 'revoked',
  options: { prefix?: string; stream?: string; durable?: boolean } = {},
): Promise<string> {
  const fields = sessionRecordFields({
    ...device,
    status,
    clientPublicKey: Buffer.from(device.publicKeyBase64, 'base64'),
    ...(status === 'revoked' ? { revokedAtMs: Date.now() } : {}),
  });
  await redis.hSet(`${options.prefix ?? 'gateway:'}session:${device.deviceSessionId}`, fields);
  const id = await redis.xAdd(options.stream ?? 'gateway:session-events', '*', fields);
  if (options.durable === true) {
    // Same connection: WAIT covers both writes.
    const replicas = Number(await redis.sendCommand(['WAIT', '1', '10000']));
    if (replicas < 1) throw new Error(`session ${device.deviceSessionId}: no replica acknowledged the record within 10 s`);
  }
  return id;
}

/** A new device of `userId` with its session written active (record, then snapshot). */
export async function activeDeviceOn(redis: RawRedis, userId: string, label = 'ds'): Promise<Device> {
  const device = newDevice(userId, label);
  await writeSession(redis, device, 'active');
  return device;
}

/** Appends a client event entry. */
export function publishEvent(
  redis: RawRedis,
  event: { userId: string; deviceSessionId?: string; eventType: string; payload: Uint8Array },
  stream = 'gateway:client-events',
): Promise<string> {
  return redis.xAdd(stream, '*', clientEventFields(event));
}

export function clientFor(
  device: Device,
  grpcAddress: string,
  gatewayPublicKey: Uint8Array,
  channelOptions?: ChannelOptions,
): GatewayClient {
  return new GatewayClient({
    address: grpcAddress,
    deviceSessionId: device.deviceSessionId,
    userId: device.userId,
    privateKey: device.privateKey,
    gatewayPublicKeys: [gatewayPublicKey],
    ...(channelOptions === undefined ? {} : { channelOptions }),
  });
}

/** What the echo downstream saw of one call. */
export interface SeenCall {
  readonly command: DownstreamCommand;
  readonly metadata: Record<string, unknown>;
  readonly deadline: number | undefined;
}

/**
 * A real `CommandHandler` business service: echoes the payload with result code `ok`.
 * Message types ending in `.hold` wait until `release()` is called; those ending in `.expand`
 * answer with as many bytes as their payload says (decimal).
 */
export class EchoDownstream {
  readonly calls: SeenCall[] = [];
  private readonly server = new Server();
  private held: Array<() => void> = [];
  private holdWaiters: Array<() => void> = [];
  port = 0;

  async start(): Promise<this> {
    this.server.addService(CommandHandlerService, {
      execute: (call: ServerUnaryCall<DownstreamCommand, DownstreamResult>, callback: sendUnaryData<DownstreamResult>) => {
        const deadline = call.getDeadline();
        this.calls.push({
          command: call.request,
          metadata: (call.metadata as Metadata).getMap(),
          deadline: deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? Number(deadline) : undefined,
        });
        // `.expand`: the payload is a byte count, answered with that many bytes (a small request, a large answer).
        const payload = call.request.messageType.endsWith('.expand') ? Buffer.alloc(Number(Buffer.from(call.request.payload).toString()), 0x61) : call.request.payload;
        const answer = () => callback(null, { resultCode: 'ok', payload });
        if (call.request.messageType.endsWith('.hold')) {
          this.held.push(answer);
          for (const waiter of this.holdWaiters.splice(0)) waiter();
        } else {
          answer();
        }
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
    );
    return this;
  }

  /** Resolves once a `.hold` call is waiting. */
  async holding(): Promise<void> {
    if (this.held.length > 0) return;
    await new Promise<void>((resolve) => this.holdWaiters.push(resolve));
  }

  release(): void {
    for (const answer of this.held.splice(0)) answer();
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

/** Collects events from an async iterable until `count` arrived; returns them and the iterator. */
export async function take<T>(iterator: AsyncIterator<T>, count: number): Promise<T[]> {
  const out: T[] = [];
  while (out.length < count) {
    const next = await iterator.next();
    if (next.done === true) throw new Error(`stream ended after ${out.length} of ${count} events`);
    out.push(next.value);
  }
  return out;
}

/** The error an async iterator ends with (fails if it ends cleanly first). */
export async function endError<T>(iterator: AsyncIterator<T>): Promise<unknown> {
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) return new Error('stream ended without an error');
    }
  } catch (error) {
    return error;
  }
}

/**
 * Drains an event iterable in the background, the way an app would: every event lands in
 * `events`, the terminal error in `error` (`undefined` while open or after a clean end).
 */
export class EventCollector {
  readonly events: VerifiedEvent[] = [];
  error: unknown = undefined;
  ended = false;
  /** Settles when the iterable has ended (never rejects). */
  readonly finished: Promise<void>;

  constructor(iterable: AsyncIterable<VerifiedEvent>) {
    this.finished = (async () => {
      try {
        for await (const event of iterable) this.events.push(event);
      } catch (error) {
        this.error = error;
      } finally {
        this.ended = true;
      }
    })();
  }

  /** Client events only (the bootstrap event excluded). */
  get clientEvents(): VerifiedEvent[] {
    return this.events.filter((e) => e.eventId !== '');
  }

  /** Ids of client events (gateway.* events left out), in arrival order. */
  get clientEventIds(): string[] {
    return this.events.filter((e) => !e.eventType.startsWith('gateway.')).map((e) => e.eventId);
  }

  count(eventType: string): number {
    return this.events.filter((e) => e.eventType === eventType).length;
  }

  /** Waits until at least `count` events (bootstrap included) arrived. */
  async waitForCount(count: number, timeoutMs = 10_000): Promise<void> {
    await waitFor(
      () => {
        if (this.events.length >= count) return true;
        if (this.ended) throw new Error(`stream ended after ${this.events.length} of ${count} events: ${String(this.error)}`);
        return false;
      },
      { timeoutMs, intervalMs: 5, message: `stream to receive ${count} events (has ${this.events.length})` },
    );
  }

  /** Waits for the stream to end and returns its terminal error. */
  async waitForEnd(timeoutMs = 10_000): Promise<unknown> {
    await waitFor(() => this.ended, { timeoutMs, intervalMs: 5, message: 'stream to end' });
    return this.error;
  }
}

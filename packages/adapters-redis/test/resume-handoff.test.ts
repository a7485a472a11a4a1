import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Ed25519ResponseSigner, createGatewayCore, type PushHub, type StreamEntry, type StreamEntryHandler } from '@edge-gateway/core';
import { startGrpcServer, type GrpcServerHandle } from '@edge-gateway/adapters-grpc';
import { GatewayClient, type VerifiedEvent } from '@edge-gateway/client';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisEventHistory,
  RedisReplayStore,
  RedisSessionStore,
  RedisStreamSubscriber,
  connectAndPing,
  type RedisClient,
} from '../src/index.js';
import { MetricsHarness, clientFor, unique } from './helpers.js';

/**
 * The resume handoff of SPEC §8.3 wired from the real pieces: Redis history and subscriber,
 * core services and hub, the gRPC server and the client package.
 */

const LAG_MS = 150;

/**
 * Hands entries to the real handler `LAG_MS` late (in order): a subscriber whose `XREAD` reply
 * is processed after the resume's `XRANGE` of the same entries, as on a busy event loop.
 */
class LaggingHandler implements StreamEntryHandler {
  readonly stream = 'client_events' as const;
  constructor(private readonly inner: StreamEntryHandler) {}
  handle(entry: StreamEntry): void {
    setTimeout(() => this.inner.handle(entry), LAG_MS);
  }
}

let server: RedisServerHandle;
let redis: RedisClient;
let grpc: GrpcServerHandle;
let subscriber: RedisStreamSubscriber;
let hub: PushHub;
const harness = new MetricsHarness();
const streamKey = unique('client-events');
const signerKey = generateKeyPairSync('ed25519').privateKey;
const signer = new Ed25519ResponseSigner(signerKey);

beforeAll(async () => {
  server = await startRedisServer();
  redis = clientFor(server);
  await connectAndPing(redis, 5000);
  const metrics = harness.metrics;
  const core = createGatewayCore(
    {
      sessions: new RedisSessionStore(redis, { keyPrefix: 'gateway:' }),
      replay: new RedisReplayStore(redis, { keyPrefix: 'gateway:' }),
      history: new RedisEventHistory(redis, { streamKey }),
      signer,
      metrics,
    },
    { sessionCacheMaxEntries: 100, sessionCacheTtlMs: 30_000, pushStreamBuffer: 256 },
  );
  hub = core.hub;
  subscriber = new RedisStreamSubscriber({
    client: redis,
    streamKey,
    handler: new LaggingHandler(core.clientEvents),
    blockMs: 1000,
  });
  await subscriber.start();
  grpc = await startGrpcServer({
    address: '127.0.0.1:0',
    core,
    maxPayloadBytes: 1024 * 1024,
    metrics,
  });
});

afterAll(async () => {
  hub?.close();
  await grpc?.close(1000);
  subscriber?.stop();
  redis?.destroy();
  await server?.stop();
});

let deviceSeq = 0;
async function newDevice(userId: string): Promise<{ deviceSessionId: string; userId: string; privateKey: KeyObject }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  const deviceSessionId = `handoff-${process.pid}-${(deviceSeq += 1)}`;
  const fields = {
    device_session_id: deviceSessionId,
    user_id: userId,
    status: 'active',
    client_public_key: der.subarray(der.length - 32).toString('base64'),
  };
  await redis.command(['HSET', `gateway:session:${deviceSessionId}`, ...Object.entries(fields).flat()]);
  return { deviceSessionId, userId, privateKey };
}

async function publish(userId: string, label: string, deviceSessionId?: string): Promise<string> {
  const fields = ['user_id', userId, 'event_type', 'chat.message', 'payload_base64', Buffer.from(label).toString('base64')];
  if (deviceSessionId !== undefined) fields.push('device_session_id', deviceSessionId);
  return String(await redis.command(['XADD', streamKey, '*', ...fields]));
}

async function take(iterator: AsyncIterator<VerifiedEvent>, n: number): Promise<VerifiedEvent[]> {
  const out: VerifiedEvent[] = [];
  while (out.length < n) {
    const next = await iterator.next();
    if (next.done === true) throw new Error(`stream ended after ${out.length} of ${n}`);
    out.push(next.value);
  }
  return out;
}

/** A client of the test gateway for `device`. */
function clientOf(device: Awaited<ReturnType<typeof newDevice>>): GatewayClient {
  return new GatewayClient({
    address: `127.0.0.1:${grpc.port}`,
    deviceSessionId: device.deviceSessionId,
    userId: device.userId,
    privateKey: device.privateKey,
    gatewayPublicKeys: [signer.publicKey],
  });
}

describe('resume handoff (SPEC §8.3)', () => {
  it('does not deliver twice an event the live feed hands over after the replay already sent it', async () => {
    const device = await newDevice('user-handoff');
    const client = clientOf(device);
    try {
      const first = new AbortController();
      const events = client.subscribe({ signal: first.signal })[Symbol.asyncIterator]();
      await take(events, 1);
      const seen = await publish('user-handoff', 'seen');
      expect((await take(events, 1))[0]?.eventId).toBe(seen);
      first.abort();
      await events.return?.(undefined);

      const missed = [
        await publish('user-handoff', 'm-1'),
        await publish('handoff-other', 'x'),
        await publish('user-handoff', 'm-2', device.deviceSessionId),
        await publish('user-handoff', 'm-3'),
      ].filter((_, i) => i !== 1);
      const replayedBefore = await harness.value('gateway_push_resume_replayed_events_total');
      // Resume at once: the history read returns the missed entries while the (lagging)
      // subscriber has yet to hand them to the hub, which it does after the stream started.
      const resumed = new AbortController();
      const again = client.subscribe({ resumeAfterEventId: client.lastEventId, signal: resumed.signal })[Symbol.asyncIterator]();
      const [bootstrap, ...replayed] = await take(again, 1 + missed.length);
      expect(bootstrap?.eventType).toBe('gateway.server_time');
      expect(replayed.map((e) => e.eventId)).toEqual(missed);
      expect((await harness.value('gateway_push_resume_replayed_events_total')) - replayedBefore).toBe(missed.length);

      // The lagging live copies of the missed events arrive now; a later live event is next.
      const live = await publish('user-handoff', 'live');
      const [next] = await take(again, 1);
      expect(next?.eventId).toBe(live);
      resumed.abort();
      await again.return?.(undefined);
    } finally {
      client.close();
    }
  });

  it('keeps live events published during the resume that the history read did not see', async () => {
    const device = await newDevice('user-during');
    const client = clientOf(device);
    try {
      const first = new AbortController();
      const events = client.subscribe({ signal: first.signal })[Symbol.asyncIterator]();
      await take(events, 1);
      const seen = await publish('user-during', 'seen');
      await take(events, 1);
      first.abort();
      await events.return?.(undefined);
      expect(client.lastEventId).toBe(seen);

      const missed = [await publish('user-during', 'm-1'), await publish('user-during', 'm-2')];
      const resumed = new AbortController();
      const again = client.subscribe({ resumeAfterEventId: seen, signal: resumed.signal })[Symbol.asyncIterator]();
      // Published while the stream registers and replays: either replayed or live, once.
      const during = [await publish('user-during', 'd-1'), await publish('user-during', 'd-2')];
      const got = await take(again, 1 + missed.length + during.length);
      expect(got.slice(1).map((e) => e.eventId)).toEqual([...missed, ...during]);
      const live = await publish('user-during', 'live');
      expect((await take(again, 1))[0]?.eventId).toBe(live);
      resumed.abort();
      await again.return?.(undefined);
    } finally {
      client.close();
    }
  });
});

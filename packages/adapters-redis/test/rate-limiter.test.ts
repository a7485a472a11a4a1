import { rateLimiterContract } from '@edge-gateway/core/testing';
import { startRedisCluster, startRedisServer, waitFor, type RedisClusterHandle, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RATE_LIMIT_SCRIPT_SHA,
  RedisRateLimiter,
  RedisReplayStore,
  connectAndPing,
  createRedisClusterClient,
  keySlot,
  partitionTag,
  userPartition,
  type RedisClient,
  type RedisClusterClient,
} from '../src/index.js';
import { clientFor, MetricsHarness, unique } from './helpers.js';

let server: RedisServerHandle;
let client: RedisClient;
let cluster: RedisClusterHandle;
let clusterClient: RedisClusterClient;
const metrics = new MetricsHarness();
const keyPrefix = 'rl:';

beforeAll(async () => {
  server = await startRedisServer();
  client = clientFor(server, { commandTimeoutMs: 2000, metrics: metrics.metrics });
  await connectAndPing(client, 5000);
  cluster = await startRedisCluster({ replicasPerMaster: 0 });
  clusterClient = createRedisClusterClient({ nodes: [{ host: cluster.host, port: cluster.nodes[0]!.port }], password: cluster.password, commandTimeoutMs: 2000 });
  await connectAndPing(clusterClient, 5000);
});

afterAll(async () => {
  client?.destroy();
  clusterClient?.destroy();
  await server?.stop();
  await cluster?.stop();
});

// One master: reservations keep their usual key, so the replay store sees them.
rateLimiterContract('RedisRateLimiter (one master)', () => ({
  limiter: new RedisRateLimiter(client, { keyPrefix }),
  replay: new RedisReplayStore(client, { keyPrefix }),
}));

rateLimiterContract('RedisRateLimiter (cluster)', () => ({ limiter: new RedisRateLimiter(clusterClient, { keyPrefix, cluster: true }) }));

const bucket = (rule: string, subject: string, intervalMs = 100, burst = 1) => ({ rule, intervalMs, burst, subject });

describe('RedisRateLimiter (SPEC §5.2 keys, one round trip)', () => {
  it('one EVALSHA per request, refused or admitted; a refusal writes nothing, an admission one tat per bucket that expires when the bucket is full', async () => {
    const limiter = new RedisRateLimiter(client, { keyPrefix });
    const subject = { deviceSessionId: unique('ds'), userId: unique('user') };
    const session = bucket('session=10/s:2', subject.deviceSessionId, 100, 2);
    const user = bucket('user=5/s:1', subject.userId, 200, 1);
    const calls = () => metrics.value('gateway_redis_command_duration_seconds', { command: 'EVALSHA' });
    const before = await calls();
    expect(await limiter.acquireAndReserve([session, user], subject, 'r-1', 60_000)).toEqual({ admitted: true, reservation: 'reserved' });
    const refused = await limiter.acquireAndReserve([session, user], subject, 'r-2', 60_000);
    expect(refused).toMatchObject({ admitted: false, refusedBy: 1 });
    expect(await calls()).toBe(before + 2);
    const tag = partitionTag(userPartition(subject.userId));
    const sessionKey = `${keyPrefix}rate:{${tag}}:session=10/s:2:${subject.deviceSessionId}`;
    const userKey = `${keyPrefix}rate:{${tag}}:user=5/s:1:${subject.userId}`;
    expect(limiter.bucketKey(session, subject)).toBe(sessionKey);
    const sessionTtl = Number(await client.command(['PTTL', sessionKey]));
    const userTtl = Number(await client.command(['PTTL', userKey]));
    // Full again after one interval (burst 2, one taken) and one interval (burst 1).
    expect(sessionTtl).toBeGreaterThan(0);
    expect(sessionTtl).toBeLessThanOrEqual(100);
    expect(userTtl).toBeGreaterThan(100);
    expect(userTtl).toBeLessThanOrEqual(200);
    // The refused request: no reservation, and the session bucket kept its second request.
    expect(await client.command(['EXISTS', `${keyPrefix}replay:${subject.deviceSessionId}/r-2`])).toBe(0);
    expect(await client.command(['EXISTS', `${keyPrefix}replay:${subject.deviceSessionId}/r-1`])).toBe(1);
    expect(await limiter.acquire([session], subject)).toEqual({ admitted: true });
  });

  it('loads the script again after SCRIPT FLUSH (restart, failover) and answers the same', async () => {
    const limiter = new RedisRateLimiter(client, { keyPrefix });
    const subject = { deviceSessionId: unique('ds'), userId: unique('user') };
    await client.command(['SCRIPT', 'FLUSH']);
    expect(await client.command(['SCRIPT', 'EXISTS', RATE_LIMIT_SCRIPT_SHA])).toEqual([0]);
    expect(await limiter.acquireAndReserve([bucket('s=1/s:1', subject.deviceSessionId, 1000)], subject, 'after-flush', 1000)).toEqual({ admitted: true, reservation: 'reserved' });
    expect(await client.command(['SCRIPT', 'EXISTS', RATE_LIMIT_SCRIPT_SHA])).toEqual([1]);
  });

  it('cluster: the reservation and every bucket of a user share the slot of its partition tag', async () => {
    const limiter = new RedisRateLimiter(clusterClient, { keyPrefix, cluster: true });
    for (let i = 0; i < 8; i++) {
      const subject = { deviceSessionId: unique('ds'), userId: `user{${i}}-${unique('u')}` };
      const buckets = [bucket('session=5/s:5', subject.deviceSessionId), bucket('user=9/s:9', subject.userId)];
      const reservation = limiter.reservationKey(subject, 'req-1');
      expect(reservation).toBe(`${keyPrefix}replay:{${partitionTag(userPartition(subject.userId))}}:${subject.deviceSessionId}/req-1`);
      const slots = new Set([reservation, ...buckets.map((b) => limiter.bucketKey(b, subject))].map(keySlot));
      expect(slots.size).toBe(1);
      expect(await limiter.acquireAndReserve(buckets, subject, 'req-1', 60_000)).toEqual({ admitted: true, reservation: 'reserved' });
      expect(await clusterClient.command(['EXISTS', reservation])).toBe(1);
    }
  });

  it('rejects when Redis cannot answer (the core fails closed)', async () => {
    const limiter = new RedisRateLimiter(client, { keyPrefix });
    const subject = { deviceSessionId: unique('ds'), userId: unique('user') };
    server.pause();
    try {
      await expect(limiter.acquireAndReserve([], subject, 'x', 1000)).rejects.toThrow();
    } finally {
      server.resume();
    }
  });
});

describe('RedisRateLimiter with replicated reservations (GATEWAY_REDIS_REPLAY_MIN_REPLICAS)', () => {
  let master: RedisServerHandle;
  let replica: RedisServerHandle;
  let own: RedisClient;

  beforeAll(async () => {
    master = await startRedisServer();
    replica = await startRedisServer({ password: master.password, extraArgs: ['--masterauth', master.password, '--replicaof', master.host, String(master.port)] });
    own = clientFor(master, { commandTimeoutMs: 2000 });
    await connectAndPing(own, 5000);
    // Until the replica acknowledges writes (WAIT counts acknowledgements of this connection's own write).
    await waitFor(
      async () => {
        await own.command(['SET', unique('probe'), '1', 'PX', '10000']);
        return Number(await own.command(['WAIT', '1', '100'])) >= 1;
      },
      { timeoutMs: 15_000, message: 'the replica acknowledges writes' },
    );
  });

  afterAll(async () => {
    own?.destroy();
    await replica?.stop();
    await master?.stop();
  });

  const waits = async (): Promise<number> => Number(/cmdstat_wait:calls=(\d+)/.exec(String(await own.command(['INFO', 'commandstats'])))?.[1] ?? 0);

  it('a reservation the script makes counts once WAIT confirms it; a refusal or a replay never waits for one; unconfirmed, the reservation is withdrawn', async () => {
    const store = new RedisReplayStore(own, { keyPrefix, minReplicas: 1, waitTimeoutMs: 1500 });
    const limiter = new RedisRateLimiter(own, { keyPrefix, reservations: store });
    const subject = { deviceSessionId: unique('ds'), userId: unique('user') };
    const rule = bucket('session=1/m:1', subject.deviceSessionId, 60_000, 1);
    try {
      const before = await waits();
      expect(await limiter.acquireAndReserve([rule], subject, 'w-1', 60_000)).toEqual({ admitted: true, reservation: 'reserved' });
      expect(await waits()).toBeGreaterThan(before);
      // The replica cut off: WAIT would take its whole 1.5 s timeout.
      replica.pause();
      try {
        let started = performance.now();
        expect(await limiter.acquireAndReserve([rule], subject, 'w-2', 60_000)).toMatchObject({ admitted: false, refusedBy: 0 });
        expect(await limiter.acquireAndReserve([], subject, 'w-1', 60_000)).toEqual({ admitted: true, reservation: 'duplicate' });
        expect(performance.now() - started).toBeLessThan(1000);
        expect(await own.command(['EXISTS', `${keyPrefix}replay:${subject.deviceSessionId}/w-2`])).toBe(0);
        started = performance.now();
        expect(await limiter.acquireAndReserve([], subject, 'w-3', 60_000)).toEqual({ admitted: true, reservation: 'not_replicated' });
        expect(performance.now() - started).toBeGreaterThanOrEqual(1400);
        expect(await own.command(['EXISTS', `${keyPrefix}replay:${subject.deviceSessionId}/w-3`])).toBe(0);
      } finally {
        replica.resume();
      }
    } finally {
      store.close();
    }
  });
});

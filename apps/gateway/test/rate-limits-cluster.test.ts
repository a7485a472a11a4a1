import { sign } from 'node:crypto';
import { Metadata, credentials, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAndPing, createRedisClusterClient, keySlot, partitionTag, userPartition, type RedisClusterClient } from '@edge-gateway/adapters-redis';
import { EdgeGatewayClient } from '@edge-gateway/adapters-grpc/generated';
import { commandRequestBytes } from '@edge-gateway/client';
import { StatusCodes } from '@edge-gateway/protocol';
import { startRedisCluster, type RedisClusterHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { EchoDownstream, newDevice, type Device } from '@edge-gateway/test-utils/system-support';

/**
 * GATEWAY_RATE_LIMIT_STORE=redis on a Redis Cluster (3 masters, one replica each, so every
 * reservation also waits for its replica: the default GATEWAY_REDIS_REPLAY_MIN_REPLICAS=1),
 * two built gateway processes: one script call reaches a request's reservation and buckets
 * because all of them carry the user's partition tag (SPEC §5.2).
 */

const RULES = [
  'session=5/m:5', // every command of a device session, on both processes
  'user:u.=1/m:1', // one budget for all of a user's devices
  'session:f.=1/m:1', // a route rule
  'session:r.=30/m:1', // a 2 s interval: the refused request id is admitted after the wait
].join(',');

let cluster: RedisClusterHandle;
let redis: RedisClusterClient;
let downstream: EchoDownstream;
let signer: ReturnType<typeof writeSignerKey>;
let gatewayA: GatewayProcess;
let gatewayB: GatewayProcess;
let grpcA = '';
let grpcB = '';

const RATE_LIMITED = { code: StatusCodes.RESOURCE_EXHAUSTED, details: 'rate limit exceeded' };

function env(): Record<string, string> {
  return {
    GATEWAY_REDIS_CLUSTER_NODES: cluster.seeds,
    GATEWAY_REDIS_PASSWORD: cluster.password,
    GATEWAY_RATE_LIMITS: RULES,
    GATEWAY_RATE_LIMIT_STORE: 'redis',
    GATEWAY_DOWNSTREAM_ROUTES: ['u.', 'f.', 'r.', 'x.'].map((prefix) => `${prefix}=127.0.0.1:${downstream.port}`).join(','),
    GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: signer.path,
    GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
  };
}

async function activeDevice(userId: string): Promise<Device> {
  const device = newDevice(userId, 'rl');
  const fields = { device_session_id: device.deviceSessionId, user_id: userId, status: 'active', client_public_key: device.publicKeyBase64 };
  await redis.command(['HSET', `gateway:session:${device.deviceSessionId}`, ...Object.entries(fields).flat()]);
  return device;
}

/** One signed command through the generated client: its status and trailers as the gateway sent them. */
function execute(grpc: string, device: Device, messageType: string, requestId: string): Promise<{ code: number; details: string; trailers: Record<string, unknown> }> {
  const fields = { deviceSessionId: device.deviceSessionId, messageType, requestId, timestampMs: Date.now(), payload: new TextEncoder().encode(requestId) };
  const request = { ...fields, payload: Buffer.from(fields.payload), signature: sign(null, commandRequestBytes(fields), device.privateKey) };
  const client = new EdgeGatewayClient(grpc, credentials.createInsecure());
  return new Promise((resolve) => {
    client.executeCommand(request, new Metadata(), (error: ServiceError | null) => {
      client.close();
      resolve(error === null ? { code: 0, details: '', trailers: {} } : { code: error.code, details: error.details, trailers: error.metadata.getMap() });
    });
  });
}

/** The key forms of SPEC §5.2 on a Cluster, written out here (not taken from the adapter). */
const tagOf = (device: Device): string => partitionTag(userPartition(device.userId));
const reservationKey = (device: Device, requestId: string): string => `gateway:replay:{${tagOf(device)}}:${device.deviceSessionId}/${requestId}`;
const bucketKey = (device: Device, rule: string, subject: string): string => `gateway:rate:{${tagOf(device)}}:${rule}:${subject}`;
const exists = async (key: string): Promise<number> => Number(await redis.command(['EXISTS', key]));
const seen = (requestId: string): number => downstream.calls.filter((c) => c.command.requestId === requestId).length;

beforeAll(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 1 });
  redis = createRedisClusterClient({ nodes: [{ host: cluster.host, port: cluster.nodes[0]!.port }], password: cluster.password, commandTimeoutMs: 2000 });
  await connectAndPing(redis, 5000);
  downstream = await new EchoDownstream().start();
  signer = writeSignerKey();
  gatewayA = new GatewayProcess(env());
  gatewayB = new GatewayProcess(env());
  [grpcA, grpcB] = (await Promise.all([gatewayA.started(), gatewayB.started()])).map((a) => a.grpc) as [string, string];
}, 60_000);

afterAll(async () => {
  await Promise.all([gatewayA?.stop(), gatewayB?.stop()]);
  downstream?.stop();
  redis?.destroy();
  await cluster?.stop();
});

describe('rate limits with GATEWAY_RATE_LIMIT_STORE=redis on a Redis Cluster (built binary, two processes)', () => {
  it('a route rule holds across the two processes; the refused request leaves no reservation; the keys share the user\'s slot', async () => {
    const device = await activeDevice(`rl-route-${process.pid}`);
    expect((await execute(grpcA, device, 'f.go', 'f-1')).code).toBe(0);
    const refused = await execute(grpcB, device, 'f.go', 'f-2');
    expect(refused).toMatchObject(RATE_LIMITED);
    expect(Number(refused.trailers['retry-after-ms'])).toBeGreaterThan(50_000);
    expect(Number(refused.trailers['retry-after-ms'])).toBeLessThanOrEqual(60_000);
    expect(await execute(grpcA, device, 'f.go', 'f-3')).toMatchObject(RATE_LIMITED);
    expect([seen('f-1'), seen('f-2'), seen('f-3')]).toEqual([1, 0, 0]);
    // The admitted request's reservation and its buckets are in one slot (the user's tag);
    // the refused ones wrote nothing.
    const keys = [reservationKey(device, 'f-1'), bucketKey(device, 'session=5/m:5', device.deviceSessionId), bucketKey(device, 'session:f.=1/m:1', device.deviceSessionId)];
    expect(await Promise.all(keys.map(exists))).toEqual([1, 1, 1]);
    expect(new Set(keys.map(keySlot)).size).toBe(1);
    expect(await exists(reservationKey(device, 'f-2'))).toBe(0);
    expect(await exists(reservationKey(device, 'f-3'))).toBe(0);
    expect(await exists(`gateway:replay:${device.deviceSessionId}/f-1`)).toBe(0);
  });

  it('a user rule holds across the user\'s devices on the two processes; another user is not limited', async () => {
    const user = `rl-user-${process.pid}`;
    const [phone, laptop, stranger] = [await activeDevice(user), await activeDevice(user), await activeDevice(`rl-other-${process.pid}`)];
    expect((await execute(grpcA, phone, 'u.act', 'u-phone')).code).toBe(0);
    expect(await execute(grpcB, laptop, 'u.act', 'u-laptop')).toMatchObject(RATE_LIMITED);
    expect(await exists(reservationKey(laptop, 'u-laptop'))).toBe(0);
    expect((await execute(grpcB, stranger, 'u.act', 'u-stranger')).code).toBe(0);
    expect(await exists(bucketKey(phone, 'user:u.=1/m:1', user))).toBe(1);
    expect([seen('u-phone'), seen('u-laptop'), seen('u-stranger')]).toEqual([1, 0, 1]);
  });

  it('the session rule counts every command of a device on both processes', async () => {
    const device = await activeDevice(`rl-session-${process.pid}`);
    for (let i = 0; i < 5; i++) expect((await execute(i % 2 === 0 ? grpcA : grpcB, device, 'x.any', `x-${i}`)).code).toBe(0);
    expect(await execute(grpcB, device, 'x.any', 'x-5')).toMatchObject(RATE_LIMITED);
    expect(await exists(reservationKey(device, 'x-5'))).toBe(0);
  });

  it('a refused request id is admitted after the retry-after; sent again it is refused ALREADY_EXISTS', async () => {
    const device = await activeDevice(`rl-retry-${process.pid}`);
    expect((await execute(grpcA, device, 'r.go', 'r-first')).code).toBe(0);
    const refused = await execute(grpcB, device, 'r.go', 'r-again');
    expect(refused).toMatchObject(RATE_LIMITED);
    const retryAfter = Number(refused.trailers['retry-after-ms']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(2000);
    expect(await exists(reservationKey(device, 'r-again'))).toBe(0);
    // The limiter's own time is the event: wait what the gateway said.
    await new Promise((resolve) => setTimeout(resolve, retryAfter));
    expect((await execute(grpcA, device, 'r.go', 'r-again')).code).toBe(0);
    expect(await exists(reservationKey(device, 'r-again'))).toBe(1);
    // A replay draws from the buckets like any admitted request (SPEC §5.2): right away it is
    // limited; once the bucket has room again, the same request id on the other process is a replay.
    const early = await execute(grpcB, device, 'r.go', 'r-again');
    expect(early).toMatchObject(RATE_LIMITED);
    await new Promise((resolve) => setTimeout(resolve, Number(early.trailers['retry-after-ms'])));
    expect(await execute(grpcB, device, 'r.go', 'r-again')).toMatchObject({ code: StatusCodes.ALREADY_EXISTS, details: 'request_id was already used' });
    expect(seen('r-again')).toBe(1);
  });
});

import { replayStoreContract, revocationStoreContract, sessionStoreContract } from '@edge-gateway/core/testing';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAndPing, RedisCommandError, RedisReplayStore, RedisRevocationStore, RedisSessionStore, type RedisClient } from '../src/index.js';
import { clientFor, MetricsHarness, timed, unique } from './helpers.js';
import { flatToRecord } from '../src/redis-session-store.js';

let server: RedisServerHandle;
let client: RedisClient;
let admin: RedisClient;
const metrics = new MetricsHarness();
const keyPrefix = 'test:';

beforeAll(async () => {
  server = await startRedisServer();
  client = clientFor(server, { commandTimeoutMs: 400, metrics: metrics.metrics });
  admin = clientFor(server, { commandTimeoutMs: 2000 });
  await connectAndPing(client, 5000);
  await connectAndPing(admin, 5000);
});

afterAll(async () => {
  client?.destroy();
  admin?.destroy();
  await server?.stop();
});

/** Pausing keeps the data, so the contract can read it again after repair. */
const breakStore = async (): Promise<void> => server.pause();
const repairStore = async (): Promise<void> => {
  server.resume();
  await waitFor(async () => (await client.command(['PING'])) === 'PONG', { message: 'redis answers again' });
};

sessionStoreContract('RedisSessionStore', () => ({
  store: new RedisSessionStore(client, { keyPrefix }),
  async seed(id, fields) {
    const args = Object.entries(fields).flat();
    await admin.command(['HSET', `${keyPrefix}session:${id}`, ...args]);
  },
  breakStore,
  repairStore,
}));

replayStoreContract('RedisReplayStore', () => ({
  store: new RedisReplayStore(client, { keyPrefix }),
  elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  breakStore,
  repairStore,
}));

revocationStoreContract('RedisRevocationStore', () => {
  const streamKey = unique('session-events');
  return {
    store: new RedisRevocationStore(client, { keyPrefix, streamKey }),
    async seed(id, fields, ttlMs) {
      await admin.command(['HSET', `${keyPrefix}session:${id}`, ...Object.entries(fields).flat()]);
      if (ttlMs !== undefined) await admin.command(['PEXPIRE', `${keyPrefix}session:${id}`, String(ttlMs)]);
    },
    record: async (id) => {
      const record = flatToRecord(await admin.command(['HGETALL', `${keyPrefix}session:${id}`]));
      return Object.keys(record).length === 0 ? undefined : record;
    },
    snapshots: async (id) => {
      const reply = await admin.command(['XRANGE', streamKey, '-', '+']);
      const entries = Array.isArray(reply) ? reply : [];
      return entries.map((e) => flatToRecord(Array.isArray(e) ? (e[1] ?? null) : null)).filter((f) => f['device_session_id'] === id);
    },
    expires: true,
  };
});

describe('RedisRevocationStore (SPEC §5.3)', () => {
  it("a record it creates gets the original's remaining life; an existing record keeps its own expiry", async () => {
    const streamKey = unique('session-events');
    const store = new RedisRevocationStore(client, { keyPrefix, streamKey });
    const lost = unique('ds');
    await store.reassert({ deviceSessionId: lost, userId: 'u', clientPublicKey: '', revokedAtMs: 1, recordTtlMs: 90_000 });
    const ttl = Number(await admin.command(['PTTL', `${keyPrefix}session:${lost}`]));
    expect(ttl).toBeGreaterThan(80_000);
    expect(ttl).toBeLessThanOrEqual(90_000);
    const kept = unique('ds');
    await admin.command(['HSET', `${keyPrefix}session:${kept}`, 'device_session_id', kept, 'status', 'active']);
    await store.reassert({ deviceSessionId: kept, userId: 'u', clientPublicKey: '', revokedAtMs: 1, recordTtlMs: 90_000 });
    expect(Number(await admin.command(['PTTL', `${keyPrefix}session:${kept}`]))).toBe(-1);
  });

  it('runs the script by its digest, and by its source on a server that does not have it (a new master)', async () => {
    const streamKey = unique('session-events');
    const store = new RedisRevocationStore(client, { keyPrefix, streamKey });
    await admin.command(['SCRIPT', 'FLUSH']);
    const before = await metrics.value('gateway_redis_command_duration_seconds', { command: 'EVAL' });
    await expect(store.reassert({ deviceSessionId: unique('ds'), userId: 'u', clientPublicKey: '', revokedAtMs: 1 })).resolves.toBe('written');
    await expect(store.reassert({ deviceSessionId: unique('ds'), userId: 'u', clientPublicKey: '', revokedAtMs: 1 })).resolves.toBe('written');
    // Once after the flush; the second call found it by digest.
    expect(await metrics.value('gateway_redis_command_duration_seconds', { command: 'EVAL' })).toBe(before + 1);
    expect(await metrics.value('gateway_redis_command_duration_seconds', { command: 'EVALSHA', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
  });

  it('a snapshot whose XADD failed is appended on the next attempt, although the record is revoked by then', async () => {
    const streamKey = unique('session-events');
    const store = new RedisRevocationStore(client, { keyPrefix, streamKey });
    const id = unique('ds');
    // A key of another type makes the XADD fail (WRONGTYPE) after the record was written.
    await admin.command(['SET', streamKey, 'not a stream']);
    await expect(store.reassert({ deviceSessionId: id, userId: 'u', clientPublicKey: '', revokedAtMs: 1 })).rejects.toBeInstanceOf(RedisCommandError);
    expect(await admin.command(['HGET', `${keyPrefix}session:${id}`, 'status'])).toBe('revoked');
    await admin.command(['DEL', streamKey]);
    await expect(store.reassert({ deviceSessionId: id, userId: 'u', clientPublicKey: '', revokedAtMs: 1 })).resolves.toBe('written');
    expect(await admin.command(['XLEN', streamKey])).toBe(1);
    await expect(store.reassert({ deviceSessionId: id, userId: 'u', clientPublicKey: '', revokedAtMs: 1 })).resolves.toBe('present');
    expect(await admin.command(['XLEN', streamKey])).toBe(1);
  });
});

describe('Redis stores: data layout (SPEC §5.1, §5.2)', () => {
  it('reads P + "session:" + id and writes P + "replay:" + ds + "/" + req with a PX ttl', async () => {
    const ds = unique('ds');
    await admin.command(['HSET', `${keyPrefix}session:${ds}`, 'user_id', 'u1']);
    await expect(new RedisSessionStore(client, { keyPrefix }).getRecord(ds)).resolves.toEqual({ user_id: 'u1' });
    await expect(new RedisSessionStore(client, { keyPrefix: 'other:' }).getRecord(ds)).resolves.toBeUndefined();

    await new RedisReplayStore(client, { keyPrefix }).reserve(ds, 'req-9', 600_000);
    expect(await admin.command(['GET', `${keyPrefix}replay:${ds}/req-9`])).toBe('1');
    const ttl = Number(await admin.command(['PTTL', `${keyPrefix}replay:${ds}/req-9`]));
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);
  });

  it('records gateway_redis_command_duration_seconds by command and outcome', async () => {
    const before = await metrics.value('gateway_redis_command_duration_seconds', { command: 'HGETALL', outcome: 'ok' });
    await new RedisSessionStore(client, { keyPrefix }).getRecord(unique('ds'));
    expect(await metrics.value('gateway_redis_command_duration_seconds', { command: 'HGETALL', outcome: 'ok' })).toBe(before + 1);
  });
});

describe('request-path commands while Redis is unreachable (SPEC §5.5)', () => {
  it('fail within about the command timeout while Redis is frozen (SIGSTOP), counted as errors', async () => {
    const store = new RedisSessionStore(client, { keyPrefix });
    const errorsBefore = await metrics.value('gateway_redis_command_duration_seconds', { command: 'HGETALL', outcome: 'error' });
    server.pause();
    try {
      const { ms, error } = await timed(() => store.getRecord(unique('ds')));
      expect(error).toBeInstanceOf(RedisCommandError);
      expect((error as Error).message).toBe('redis HGETALL failed: timed out after 400ms');
      expect(ms).toBeGreaterThanOrEqual(350);
      expect(ms).toBeLessThan(1200);
    } finally {
      server.resume();
    }
    expect(await metrics.value('gateway_redis_command_duration_seconds', { command: 'HGETALL', outcome: 'error' })).toBe(errorsBefore + 1);
    // The late reply of the timed-out command must not be handed to the next command.
    const ds = unique('ds');
    await admin.command(['HSET', `${keyPrefix}session:${ds}`, 'user_id', 'after-pause']);
    await waitFor(async () => (await store.getRecord(ds))?.user_id === 'after-pause');
  });

  it('withdraw a timed-out command that was never written: it does not run once Redis is back', async () => {
    const store = new RedisReplayStore(client, { keyPrefix });
    const ds = unique('ds');
    server.pause();
    let filler: Promise<unknown> | undefined;
    try {
      // 32 MiB cannot leave this process while Redis is frozen (the kernel buffers a few MiB),
      // so the commands sent after it wait in node-redis's queue, unwritten.
      filler = client.command(['SET', `${keyPrefix}filler:${ds}`, 'x'.repeat(32 * 1024 * 1024)], { timeoutMs: 0 });
      const error = await store.reserve(ds, 'queued-1', 60_000).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RedisCommandError);
      expect((error as Error).message).toBe('redis SET failed: timed out after 400ms');
    } finally {
      server.resume();
    }
    await filler;
    // Had the SET NX been written late, this retry of the same request would be refused.
    expect(await admin.command(['EXISTS', `${keyPrefix}replay:${ds}/queued-1`])).toBe(0);
    await expect(store.reserve(ds, 'queued-1', 60_000)).resolves.toBe('reserved');
    await admin.command(['DEL', `${keyPrefix}filler:${ds}`]);
  });

  it('fail fast while Redis is down (no offline queue) and work again once it is back', async () => {
    const store = new RedisReplayStore(client, { keyPrefix });
    await server.stop();
    try {
      await waitFor(() => !client.isReady, { message: 'client noticed the outage' });
      const { ms, error } = await timed(() => store.reserve(unique('ds'), 'r', 1000));
      expect(error).toBeInstanceOf(RedisCommandError);
      expect((error as Error).message).toMatch(/^redis SET failed: /);
      expect(ms).toBeLessThan(100);
    } finally {
      await server.restart();
    }
    await waitFor(() => client.isReady, { timeoutMs: 5000, message: 'client reconnected' });
    await expect(store.reserve(unique('ds'), 'r', 1000)).resolves.toBe('reserved');
  });
});

import { startRedisCluster, waitFor, type RedisClusterHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisReplayStore,
  RedisSessionStore,
  RedisStreamSubscriber,
  connectAndPing,
  createRedisClusterClient,
  keySlot,
  type RedisClusterClient,
} from '../src/index.js';
import { RecordingHandler, unique } from './helpers.js';

let cluster: RedisClusterHandle;
let client: RedisClusterClient;
const keyPrefix = 'test:';

beforeAll(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 1 });
  client = createRedisClusterClient({
    nodes: [{ host: cluster.host, port: cluster.nodes[0]!.port }],
    password: cluster.password,
    commandTimeoutMs: 1000,
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
  });
  await connectAndPing(client, 5000);
});

afterAll(async () => {
  client?.destroy();
  await cluster?.stop();
});

describe('RedisClusterClient (GATEWAY_REDIS_CLUSTER_NODES)', () => {
  it('computes the slot of a key as the cluster does, hash tags included', async () => {
    for (const key of ['a', 'gateway:session:ds-1', 'x{tag}y', '{}empty', 'emoji-ü-key', '{user1000}.following']) {
      expect(keySlot(key)).toBe(Number(await cluster.command(cluster.nodes[0]!.port, ['CLUSTER', 'KEYSLOT', key])));
    }
  });

  it('session records and replay reservations work unchanged, with keys on every master', async () => {
    const sessions = new RedisSessionStore(client, { keyPrefix });
    const replays = new RedisReplayStore(client, { keyPrefix });
    const owners = new Set<number>();
    for (let i = 0; i < 24; i++) {
      const ds = unique(`ds-${i}`);
      const key = `${keyPrefix}session:${ds}`;
      owners.add((await cluster.masterOf(keySlot(key))).port);
      await client.command(['HSET', key, 'user_id', `u-${i}`]);
      await expect(sessions.getRecord(ds)).resolves.toEqual({ user_id: `u-${i}` });
      await expect(replays.reserve(ds, 'req-1', 60_000)).resolves.toBe('reserved');
      await expect(replays.reserve(ds, 'req-1', 60_000)).resolves.toBe('duplicate');
    }
    expect(owners.size).toBe(3);
  });

  it('a stream subscriber reads on its own connection to the stream\'s master; other commands to that master are not stalled', async () => {
    const streamKey = unique('cluster-stream');
    const handler = new RecordingHandler();
    const subscriber = new RedisStreamSubscriber({ client, streamKey, handler, blockMs: 5000, reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
    await subscriber.start();
    try {
      const id1 = String(await client.command(['XADD', streamKey, '*', 'n', '1']));
      await waitFor(() => handler.ids.includes(id1), { message: 'first entry read' });
      // The subscriber is inside XREAD BLOCK 5000 now: a command for a key on the same master answers at once.
      const sameSlotKey = `{${streamKey}}:other`;
      expect(keySlot(sameSlotKey)).toBe(keySlot(streamKey));
      const started = performance.now();
      await client.command(['SET', sameSlotKey, 'v']);
      expect(performance.now() - started).toBeLessThan(1000);
      const id2 = String(await client.command(['XADD', streamKey, '*', 'n', '2']));
      await waitFor(() => handler.ids.includes(id2), { message: 'second entry read' });
      expect(handler.ids).toEqual([id1, id2]);
    } finally {
      await subscriber.stop();
    }
  });

  it('after CLUSTER FAILOVER of the stream\'s master the subscriber resumes on the new master without losing entries', async () => {
    const streamKey = unique('failover-stream');
    const handler = new RecordingHandler();
    const subscriber = new RedisStreamSubscriber({ client, streamKey, handler, blockMs: 1000, reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
    await subscriber.start();
    try {
      const before = String(await client.command(['XADD', streamKey, '*', 'n', 'before']));
      await waitFor(() => handler.ids.includes(before), { message: 'entry before failover read' });
      const master = await cluster.masterOf(keySlot(streamKey));
      const replica = (await cluster.topology()).find((n) => n.role === 'replica' && n.masterId === master.id)!;
      await cluster.command(replica.port, ['CLUSTER', 'FAILOVER']);
      await cluster.waitUntilStable();
      const after = await waitFor(async () => String(await client.command(['XADD', streamKey, '*', 'n', 'after'])), { timeoutMs: 10_000, message: 'XADD on the new master' });
      await waitFor(() => handler.ids.includes(after), { timeoutMs: 15_000, message: 'entry after failover read' });
      expect(handler.ids).toEqual([before, after]);
      expect((await cluster.masterOf(keySlot(streamKey))).port).toBe(replica.port);
    } finally {
      await subscriber.stop();
    }
  });
});

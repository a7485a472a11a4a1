import { connectAndPing, createRedisClient, keySlot, routedUserKeys } from '@edge-gateway/adapters-redis';
import { startRedisCluster, type RedisClusterHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotReplicatedError, connectPublisher, createPublisher, type Publisher } from '../src/index.js';

/** Durable publishing (SPEC §9.2): FCALL, then WAIT 1 on the same connection. */

let cluster: RedisClusterHandle;
let durable: Publisher;
let plain: Publisher;

beforeAll(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 1 });
  durable = await connectPublisher({ nodes: cluster.seeds, password: cluster.password, durable: true, durableTimeoutMs: 500 });
  plain = await connectPublisher({ nodes: cluster.seeds, password: cluster.password });
});

afterAll(async () => {
  await durable?.close();
  await plain?.close();
  await cluster?.stop();
});

/** The master holding `user`'s partition and its replica. */
async function partitionNodes(user: string): Promise<{ master: number; replica: number; history: string }> {
  const history = routedUserKeys('gateway:', user).history;
  const master = await cluster.masterOf(keySlot(history));
  const replica = (await cluster.topology()).find((n) => n.role === 'replica' && n.masterId === master.id);
  if (replica === undefined) throw new Error(`no replica of ${master.address}`);
  return { master: master.port, replica: replica.port, history };
}

const event = (userId: string, text: string) => ({ userId, eventType: 'chat.n', payload: Buffer.from(text) });

describe('@edge-gateway/publisher durable: true', () => {
  it('resolves once a replica acknowledged the event, and says how many did', async () => {
    const result = await durable.publish(event('alice', 'one'));
    expect(result.replicas).toBe(1);
    const { replica, history } = await partitionNodes('alice');
    // Acknowledged means there: the replica holds it.
    const reader = createRedisClient({ host: '127.0.0.1', port: replica, password: cluster.password });
    try {
      await connectAndPing(reader, 5000);
      await reader.command(['READONLY']);
      expect(await reader.command(['XRANGE', history, result.id, result.id])).toHaveLength(1);
    } finally {
      reader.destroy();
    }
  });

  it('rejects with NotReplicatedError (carrying the published id) when no replica acknowledges in time', async () => {
    const { master, replica, history } = await partitionNodes('bob');
    await cluster.node(replica).stop();
    try {
      const started = performance.now();
      const error = await durable.publish(event('bob', 'lonely')).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(NotReplicatedError);
      const notReplicated = error as NotReplicatedError;
      expect(notReplicated.message).toBe(`event ${notReplicated.result.id} was published but no replica acknowledged it within 500ms (a failover now would lose it)`);
      expect(performance.now() - started).toBeGreaterThanOrEqual(450);
      // Published on the master all the same.
      const entries = (await cluster.command(master, ['XRANGE', history, notReplicated.result.id, notReplicated.result.id])) as unknown[];
      expect(entries).toHaveLength(1);
      // Without durable nothing waits and nothing is reported.
      const quick = await plain.publish(event('bob', 'plain'));
      expect(quick.replicas).toBeUndefined();
    } finally {
      await cluster.node(replica).restart();
      await cluster.waitUntilStable();
    }
    await expect(durable.publish(event('bob', 'back'))).resolves.toMatchObject({ replicas: 1 });
  });

  it('refuses a timeout outside 1..60000 ms', () => {
    expect(() => createPublisher({ nodes: cluster.seeds, password: cluster.password, durable: true, durableTimeoutMs: 0 })).toThrow(RangeError);
    expect(() => createPublisher({ nodes: cluster.seeds, password: cluster.password, durable: true, durableTimeoutMs: 60_001 })).toThrow(RangeError);
  });
});

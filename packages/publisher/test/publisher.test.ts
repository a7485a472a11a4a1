import { startRedisCluster, type RedisClusterHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoutedEventError, connectPublisher, type Publisher } from '../src/index.js';

let cluster: RedisClusterHandle;
let publisher: Publisher;

beforeAll(async () => {
  cluster = await startRedisCluster();
  publisher = await connectPublisher({ nodes: cluster.seeds, password: cluster.password, historyMaxLen: 5 });
});

afterAll(async () => {
  await publisher?.close();
  await cluster?.stop();
});

/** The routed history key of SPEC §9.2 for `user`, read back from the slot owner. */
async function history(user: string, key: string): Promise<string[][]> {
  const slot = Number(await cluster.command(cluster.nodes[0]!.port, ['CLUSTER', 'KEYSLOT', key]));
  const owner = await cluster.masterOf(slot);
  const reply = (await cluster.command(owner.port, ['XRANGE', key, '-', '+'])) as Array<[string, string[]]>;
  expect(reply.every(([, fields]) => fields[1] === user)).toBe(true);
  return reply.map(([, fields]) => fields);
}

describe('@edge-gateway/publisher', () => {
  it('appends to the user history with consecutive offsets in one epoch, bounded', async () => {
    const results = [];
    for (let i = 0; i < 7; i++) results.push(await publisher.publish({ userId: 'alice', eventType: 'chat.n', payload: Buffer.from(String(i)) }));
    expect(results.map((r) => r.offset)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(results.map((r) => r.epoch)).size).toBe(1);
    // SPEC §9.1 check value: alice is in partition 109, tag e109.238.
    const entries = await history('alice', 'gateway:push:{e109.238}:h:alice');
    expect(entries).toHaveLength(5);
    expect(entries[4]).toEqual(['user_id', 'alice', 'device_session_id', '', 'event_type', 'chat.n', 'payload_base64', Buffer.from('6').toString('base64'), 'offset', '7', 'epoch', results[0]!.epoch]);
  });

  it('await using closes the publisher at scope exit: a later publish is refused', async () => {
    let outer: Publisher | undefined;
    {
      await using scoped = await connectPublisher({ nodes: cluster.seeds, password: cluster.password });
      outer = scoped;
      await expect(scoped.publish({ userId: 'dora', eventType: 'chat.n', payload: Buffer.from('1') })).resolves.toMatchObject({ offset: 1 });
    }
    await expect(outer.publish({ userId: 'dora', eventType: 'chat.n', payload: Buffer.from('2') })).rejects.toThrow(/closed/i);
  });

  it('refuses what the gateway would drop, before sending anything', async () => {
    await expect(publisher.publish({ userId: 'bob', eventType: 'gateway.server_time', payload: Buffer.alloc(0) })).rejects.toBeInstanceOf(RoutedEventError);
    await expect(publisher.publish({ userId: 'bob', eventType: 'a.b', deviceSessionId: 'bad id', payload: Buffer.alloc(0) })).rejects.toThrow(/device session id/);
    // user_id: the user_id rule of the session records (SPEC §5.1), so no key or channel name is unbounded.
    await expect(publisher.publish({ userId: 'u'.repeat(257), eventType: 'a.b', payload: Buffer.alloc(0) })).rejects.toThrow(/^user_id is invalid$/);
    await expect(publisher.publish({ userId: 'bob\nforged', eventType: 'a.b', payload: Buffer.alloc(0) })).rejects.toThrow(/^user_id is invalid$/);
  });

  it('loads the function again on a master that lost it (FUNCTION FLUSH), then publishes', async () => {
    for (const node of cluster.nodes) await cluster.command(node.port, ['FUNCTION', 'FLUSH']);
    await expect(publisher.publish({ userId: 'carol', eventType: 'a.b', payload: Buffer.from('x') })).resolves.toMatchObject({ offset: 1 });
  });
});

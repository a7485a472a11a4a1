import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type RedisClusterHandle } from '../src/redis-cluster.js';
import { RespError, redisCommand } from '../src/resp-command.js';

describe('startRedisCluster (3 masters, 1 replica each)', () => {
  let cluster: RedisClusterHandle;
  beforeAll(async () => {
    cluster = await startRedisCluster({ replicasPerMaster: 1 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('serves all 16384 slots from 3 masters, each with one linked replica', async () => {
    const topo = await cluster.topology();
    const masters = topo.filter((n) => n.role === 'master');
    const replicas = topo.filter((n) => n.role === 'replica');
    expect(masters).toHaveLength(3);
    expect(replicas).toHaveLength(3);
    const covered = masters.flatMap((m) => m.slots).reduce((sum, [a, b]) => sum + (b - a + 1), 0);
    expect(covered).toBe(16384);
    expect(new Set(replicas.map((r) => r.masterId))).toEqual(new Set(masters.map((m) => m.id)));
    expect(cluster.seeds.split(',')).toHaveLength(6);
    for (const port of cluster.nodes.map((n) => n.port)) {
      expect(String(await cluster.command(port, ['CLUSTER', 'INFO']))).toContain('cluster_state:ok');
    }
  });

  it('requires the password on every node', async () => {
    for (const node of cluster.nodes) {
      await expect(redisCommand(node.host, node.port, undefined, ['PING'])).rejects.toThrow(/NOAUTH/);
      await expect(redisCommand(node.host, node.port, 'wrong', ['PING'])).rejects.toThrow(RespError);
    }
  });

  it('routes a key to the master of its slot (MOVED elsewhere)', async () => {
    const slot = Number(await cluster.command(cluster.nodes[0]!.port, ['CLUSTER', 'KEYSLOT', 'harness-key']));
    const owner = await cluster.masterOf(slot);
    expect(await cluster.command(owner.port, ['SET', 'harness-key', 'v'])).toBe('OK');
    const other = (await cluster.topology()).find((n) => n.role === 'master' && n.port !== owner.port)!;
    await expect(cluster.command(other.port, ['GET', 'harness-key'])).rejects.toThrow(/^MOVED \d+ /);
  });

  it('CLUSTER FAILOVER on a replica promotes it; the cluster settles with the data', async () => {
    const slot = Number(await cluster.command(cluster.nodes[0]!.port, ['CLUSTER', 'KEYSLOT', 'harness-key']));
    const before = await cluster.masterOf(slot);
    const replica = (await cluster.topology()).find((n) => n.role === 'replica' && n.masterId === before.id)!;
    await cluster.failover(replica.port);
    const after = await cluster.masterOf(slot);
    expect(after.port).toBe(replica.port);
    expect(await cluster.command(after.port, ['GET', 'harness-key'])).toBe('v');
  });

  it('stop() ends every node process', async () => {
    const handles = [...cluster.nodes];
    await cluster.stop();
    expect(handles.every((n) => !n.running)).toBe(true);
  });
});

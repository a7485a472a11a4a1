import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisSessionStore, SingleRedisTopology } from '../src/index.js';
import { clientFor, unique } from './helpers.js';

// Two independent servers stand for a master and a replica, so that each can hold what the test
// needs (a replica that has not received a record yet, or an older copy of it).
let master: RedisServerHandle;
let replica: RedisServerHandle;
let topology: SingleRedisTopology;

beforeAll(async () => {
  master = await startRedisServer();
  replica = await startRedisServer({ password: master.password });
  topology = new SingleRedisTopology({ master: clientFor(master), replicas: [{ host: replica.host, port: replica.port }] });
  await topology.connect(5000);
  await waitFor(() => topology.replicas().length === 1, { message: 'replica connected' });
});

afterAll(async () => {
  await topology?.close();
  await master?.stop();
  await replica?.stop();
});

describe('GATEWAY_REDIS_SESSION_READS=replica (SPEC §5.6)', () => {
  const store = () => new RedisSessionStore(topology.master, { keyPrefix: 'gateway:', replicas: () => topology.replicas() });

  it('answers from the replica when it holds the record', async () => {
    const id = unique('ds');
    await topology.master.command(['HSET', `gateway:session:${id}`, 'user_id', 'on-master']);
    await topology.replicas()[0]?.command(['HSET', `gateway:session:${id}`, 'user_id', 'on-replica']);
    await expect(store().getRecord(id)).resolves.toEqual({ user_id: 'on-replica' });
  });

  it('retries on the master when the replica has no record, before reporting none', async () => {
    const id = unique('ds');
    await topology.master.command(['HSET', `gateway:session:${id}`, 'user_id', 'u1']);
    await expect(store().getRecord(id)).resolves.toEqual({ user_id: 'u1' });
    await expect(store().getRecord(unique('nowhere'))).resolves.toBeUndefined();
  });

  it('falls back to the master while the replica is down, and lookups on the master only by default', async () => {
    const id = unique('ds');
    await topology.master.command(['HSET', `gateway:session:${id}`, 'user_id', 'u2']);
    await replica.stop();
    await waitFor(() => topology.replicas().length === 0, { message: 'replica gone' });
    await expect(store().getRecord(id)).resolves.toEqual({ user_id: 'u2' });
    await replica.restart();
    await waitFor(() => topology.replicas().length === 1, { message: 'replica back', timeoutMs: 10_000 });
    await topology.replicas()[0]?.command(['HSET', `gateway:session:${id}`, 'user_id', 'stale']);
    await expect(new RedisSessionStore(topology.master, { keyPrefix: 'gateway:' }).getRecord(id)).resolves.toEqual({ user_id: 'u2' });
  });

  it('describes the master and the replica with their reachability', async () => {
    const nodes = await topology.describe();
    expect(nodes.map((n) => [n.role, n.address, n.reachable])).toEqual([
      ['master', `127.0.0.1:${master.port}`, true],
      ['replica', `127.0.0.1:${replica.port}`, true],
    ]);
  });
});

import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAndPing, type RedisClient } from '../src/index.js';
import { clientFor } from './helpers.js';

/**
 * A closed client stays closed: neither a connection that was still connecting when it was
 * destroyed (node-redis 6.3 forgets that socket, which then connects and stays open) nor a
 * later `connect()` from a background task (a discovery poll) opens anything. Both kept the
 * CLI's process alive after its work under Sentinel.
 */
let server: RedisServerHandle;
let admin: RedisClient;

beforeAll(async () => {
  server = await startRedisServer();
  admin = clientFor(server, { commandTimeoutMs: 2000 });
  await connectAndPing(admin, 5000);
});

afterAll(async () => {
  admin?.destroy();
  await server?.stop();
});

/** Names of the clients connected to the server right now. */
async function connectedNames(): Promise<string[]> {
  const list = String(await admin.command(['CLIENT', 'LIST']));
  return [...list.matchAll(/ name=(\S*)/g)].map((m) => m[1] as string);
}

describe('RedisClient lifecycle', () => {
  it('await using closes the client at scope exit (graceful close, not destroy): its connection leaves CLIENT LIST', async () => {
    let outer: RedisClient | undefined;
    {
      await using client = clientFor(server, { clientName: 'lifecycle-using' });
      outer = client;
      await connectAndPing(client, 5000);
      expect(await connectedNames()).toContain('lifecycle-using');
    }
    expect(outer.closed).toBe(true);
    expect(outer.raw.isOpen).toBe(false);
    await waitFor(async () => !(await connectedNames()).includes('lifecycle-using'), { timeoutMs: 5000, message: 'the disposed client gone from CLIENT LIST' });
  });

  it('destroyed while its socket is connecting: the socket is closed once it connects', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `lifecycle-connecting-${i}`);
    const attempts = names.map((clientName) => {
      const client = clientFor(server, { clientName });
      const connecting = client.connect().then(
        () => 'connected',
        () => 'refused',
      );
      client.destroy();
      return { client, connecting };
    });
    await Promise.all(attempts.map((a) => a.connecting));
    for (const { client } of attempts) expect(client.closed).toBe(true);
    await waitFor(async () => (await connectedNames()).filter((n) => n.startsWith('lifecycle-connecting-')).length === 0, {
      timeoutMs: 5000,
      message: 'every destroyed client gone from CLIENT LIST',
    });
    for (const { client } of attempts) expect(client.raw.isOpen).toBe(false);
  });

  it('connect() after close() or destroy() opens nothing', async () => {
    const closed = clientFor(server, { clientName: 'lifecycle-closed' });
    await connectAndPing(closed, 5000);
    expect(await connectedNames()).toContain('lifecycle-closed');
    await closed.close();
    await closed.connect();
    const destroyed = clientFor(server, { clientName: 'lifecycle-destroyed' });
    destroyed.destroy();
    await destroyed.connect();
    expect(closed.raw.isOpen).toBe(false);
    expect(destroyed.raw.isOpen).toBe(false);
    await waitFor(async () => !(await connectedNames()).some((n) => n === 'lifecycle-closed' || n === 'lifecycle-destroyed'), {
      timeoutMs: 5000,
      message: 'no lifecycle-closed or lifecycle-destroyed connection',
    });
  });
});

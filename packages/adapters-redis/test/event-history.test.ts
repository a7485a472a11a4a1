import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAndPing, RedisEventHistory, type RedisClient } from '../src/index.js';
import { clientFor, unique } from './helpers.js';

let server: RedisServerHandle;
let client: RedisClient;

beforeAll(async () => {
  server = await startRedisServer();
  client = clientFor(server);
  await connectAndPing(client, 5000);
});
afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

async function fill(stream: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(String(await client.command(['XADD', stream, '*', 'n', String(i)])));
  return ids;
}

describe('RedisEventHistory (SPEC §8.3)', () => {
  it('pages strictly after the cursor, in order, COUNT at a time', async () => {
    const stream = unique('events');
    const ids = await fill(stream, 7);
    const history = new RedisEventHistory(client, { streamKey: stream });

    const first = await history.readAfter('0-0', 3);
    expect(first).toEqual({ entries: ids.slice(0, 3).map((id, i) => ({ id, fields: { n: String(i) } })), truncated: false });
    const second = await history.readAfter(ids[2] as string, 3);
    expect(second.entries.map((e) => e.id)).toEqual(ids.slice(3, 6));
    const third = await history.readAfter(ids[5] as string, 3);
    expect(third.entries.map((e) => e.id)).toEqual(ids.slice(6));
    expect((await history.readAfter(ids[6] as string, 3)).entries).toEqual([]);
  });

  it('reports no entries and not truncated for a missing stream', async () => {
    const history = new RedisEventHistory(client, { streamKey: unique('missing') });
    await expect(history.readAfter('1-0', 10)).resolves.toEqual({ entries: [], truncated: false });
  });

  it('reports truncated when entries after the cursor were trimmed (XTRIM MAXLEN)', async () => {
    const stream = unique('events');
    const ids = await fill(stream, 6);
    await client.command(['XTRIM', stream, 'MAXLEN', '3']);
    const history = new RedisEventHistory(client, { streamKey: stream });
    // The first entry still held: nothing after it is missing.
    await expect(history.readAfter(ids[3] as string, 10)).resolves.toMatchObject({ truncated: false });
    // Older than the first entry (Redis does not record trimmed ids, so this is conservative).
    await expect(history.readAfter(ids[2] as string, 10)).resolves.toMatchObject({ truncated: true });
    const fromOld = await history.readAfter(ids[0] as string, 10);
    expect(fromOld.truncated).toBe(true);
    expect(fromOld.entries.map((e) => e.id)).toEqual(ids.slice(3));
    expect((await history.readAfter(ids[4] as string, 10)).entries.map((e) => e.id)).toEqual(ids.slice(5));
  });

  it('reports truncated after XADD MAXLEN trims the stream', async () => {
    const stream = unique('events');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(String(await client.command(['XADD', stream, 'MAXLEN', '2', '*', 'n', String(i)])));
    const history = new RedisEventHistory(client, { streamKey: stream });
    await expect(history.readAfter('0-0', 10)).resolves.toMatchObject({ truncated: true });
    await expect(history.readAfter(ids[3] as string, 10)).resolves.toMatchObject({ truncated: false });
    await expect(history.readAfter(ids[2] as string, 10)).resolves.toMatchObject({ truncated: true });
  });

  it('reports truncated when an entry after the cursor was deleted (XDEL), not for cursors past it', async () => {
    const stream = unique('events');
    const ids = await fill(stream, 4);
    await client.command(['XDEL', stream, ids[2] as string]);
    const history = new RedisEventHistory(client, { streamKey: stream });
    const page = await history.readAfter(ids[0] as string, 10);
    expect(page.truncated).toBe(true);
    expect(page.entries.map((e) => e.id)).toEqual([ids[1], ids[3]]);
    await expect(history.readAfter(ids[2] as string, 10)).resolves.toMatchObject({ truncated: false });
    await expect(history.readAfter('0-0', 10)).resolves.toMatchObject({ truncated: true });
  });

  it('reports truncated for an emptied stream only for cursors before its last id', async () => {
    const stream = unique('events');
    const ids = await fill(stream, 3);
    await client.command(['XTRIM', stream, 'MAXLEN', '0']);
    const history = new RedisEventHistory(client, { streamKey: stream });
    await expect(history.readAfter(ids[1] as string, 10)).resolves.toEqual({ entries: [], truncated: true });
    await expect(history.readAfter(ids[2] as string, 10)).resolves.toEqual({ entries: [], truncated: false });
  });
});

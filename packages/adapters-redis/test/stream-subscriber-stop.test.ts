import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAndPing, RedisStreamSubscriber, type RedisClient } from '../src/index.js';
import { RecordingHandler, clientFor, unique } from './helpers.js';

let server: RedisServerHandle;
let client: RedisClient;
let admin: RedisClient;

beforeAll(async () => {
  server = await startRedisServer();
  client = clientFor(server, { clientName: 'stop-test' });
  admin = clientFor(server, { commandTimeoutMs: 2000 });
  await connectAndPing(client, 5000);
  await connectAndPing(admin, 5000);
});
afterAll(async () => {
  client?.destroy();
  admin?.destroy();
  await server?.stop();
});

/** Connections the server still has open under the subscribers' name. */
async function blockingConnections(): Promise<number> {
  const list = String(await admin.command(['CLIENT', 'LIST']));
  return list.split('\n').filter((line) => line.includes(' name=stop-test:stream ')).length;
}

describe('RedisStreamSubscriber.stop leaves no connection behind (issue 16)', () => {
  it('stopped while its blocking connection is still connecting, the socket is closed', async () => {
    // stop() right after start(): the blocking connection is in node-redis's connect
    // handshake, where destroy() alone leaves the socket open once the handshake ends.
    for (let i = 0; i < 5; i += 1) {
      const subscriber = new RedisStreamSubscriber({ client, streamKey: unique('stop'), handler: new RecordingHandler() });
      await subscriber.start();
      await subscriber.stop();
    }
    await waitFor(async () => (await blockingConnections()) === 0, { timeoutMs: 5000, message: 'no stop-test:stream connection left on the server' });
    expect(await blockingConnections()).toBe(0);
  });

  it('stopped while reading, the socket is closed too', async () => {
    const subscriber = new RedisStreamSubscriber({ client, streamKey: unique('stop'), handler: new RecordingHandler() });
    await subscriber.start();
    await waitFor(async () => (await blockingConnections()) === 1, { message: 'the blocking read is on the server' });
    await subscriber.stop();
    await waitFor(async () => (await blockingConnections()) === 0, { timeoutMs: 5000, message: 'no stop-test:stream connection left on the server' });
  });
});

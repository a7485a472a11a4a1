import { freePort, startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAndPing, createRedisClient, RedisStartupError } from '../src/index.js';
import { clientFor, recordingLogger, timed } from './helpers.js';

let server: RedisServerHandle;

beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  await server?.stop();
});

describe('connectAndPing (SPEC §8.1 step 3)', () => {
  it('connects and answers PING with the right password', async () => {
    const client = clientFor(server);
    try {
      await connectAndPing(client, 5000);
      expect(client.isReady).toBe(true);
      await expect(client.command(['PING'])).resolves.toBe('PONG');
    } finally {
      client.destroy();
    }
  });

  it("fails with kind 'auth' and a clear message without the password for a wrong password", async () => {
    const logger = recordingLogger();
    const password = 'not-the-password-1234';
    const client = clientFor(server, { password, logger });
    const { error } = await timed(() => connectAndPing(client, 5000));
    expect(error).toBeInstanceOf(RedisStartupError);
    expect((error as RedisStartupError).kind).toBe('auth');
    expect((error as Error).message).toBe(`redis PING failed: authentication failed (wrong password?) for 127.0.0.1:${server.port}`);
    expect((error as Error).message).not.toContain(password);
    // No reconnect loop left behind: the client is closed and stays quiet.
    expect(client.raw.isOpen).toBe(false);
    const linesAfter = logger.lines.length;
    await new Promise((resolve) => setTimeout(resolve, 150)); // several reconnect periods (20..200ms)
    expect(logger.lines.length).toBe(linesAfter);
    expect(JSON.stringify(logger.lines)).not.toContain(password);
  });

  it("fails with kind 'unreachable' (ECONNREFUSED) when nothing listens", async () => {
    const port = await freePort();
    const client = createRedisClient({ host: '127.0.0.1', port, password: 'x', reconnect: { minDelayMs: 10, maxDelayMs: 20 } });
    const { error, ms } = await timed(() => connectAndPing(client, 5000));
    expect(error).toBeInstanceOf(RedisStartupError);
    expect((error as RedisStartupError).kind).toBe('unreachable');
    expect((error as Error).message).toBe(`redis PING failed: 127.0.0.1:${port} unreachable (ECONNREFUSED)`);
    expect(ms).toBeLessThan(1000);
    expect(client.raw.isOpen).toBe(false);
  });

  it("fails with kind 'timeout' bounded by the timeout when the server is frozen", async () => {
    const client = clientFor(server);
    server.pause();
    try {
      const { error, ms } = await timed(() => connectAndPing(client, 600));
      expect(error).toBeInstanceOf(RedisStartupError);
      expect((error as RedisStartupError).kind).toBe('timeout');
      expect((error as Error).message).toBe(`redis PING failed: 127.0.0.1:${server.port} timed out after 600ms`);
      expect(ms).toBeGreaterThanOrEqual(550);
      expect(ms).toBeLessThan(1500);
      expect(client.raw.isOpen).toBe(false);
    } finally {
      server.resume();
    }
  });
});

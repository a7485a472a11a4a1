import { InMemorySessionStore } from '@edge-gateway/core/memory';
import { PushHub, SessionEventsHandler } from '@edge-gateway/core';
import { SessionCache } from '@edge-gateway/core/internal';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectAndPing, RedisStreamSubscriber, type RedisClient } from '../src/index.js';
import { clientFor, MetricsHarness, RecordingHandler, recordingLogger, timed, unique } from './helpers.js';

let server: RedisServerHandle;
let client: RedisClient;
let admin: RedisClient;
const subscribers: RedisStreamSubscriber[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  client = clientFor(server);
  admin = clientFor(server, { commandTimeoutMs: 2000 });
  await connectAndPing(client, 5000);
  await connectAndPing(admin, 5000);
});
afterEach(async () => {
  await Promise.all(subscribers.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  client?.destroy();
  admin?.destroy();
  await server?.stop();
});

const add = async (stream: string, fields: Record<string, string>): Promise<string> =>
  String(await admin.command(['XADD', stream, '*', ...Object.entries(fields).flat()]));

function subscriber(options: Partial<ConstructorParameters<typeof RedisStreamSubscriber>[0]> & { streamKey: string }): RedisStreamSubscriber {
  const s = new RedisStreamSubscriber({
    client,
    handler: new RecordingHandler(),
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    ...options,
  });
  subscribers.push(s);
  return s;
}

const VALID_KEY = '6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=';

describe('RedisStreamSubscriber (SPEC §5.5)', () => {
  it('starts strictly after the last id at start and delivers later entries in order', async () => {
    const stream = unique('stream');
    const before = await add(stream, { n: 'old-1' });
    await add(stream, { n: 'old-2' });
    const handler = new RecordingHandler();
    const sub = subscriber({ streamKey: stream, handler });
    await sub.start();
    expect(sub.lastId).not.toBe(before);
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await add(stream, { n: String(i) }));
    await waitFor(() => handler.entries.length >= 30, { message: '30 entries delivered' });
    expect(handler.ids).toEqual(ids);
    expect(handler.entries.map((e) => e.fields)).toEqual(ids.map((_, i) => ({ n: String(i) })));
    expect(sub.lastId).toBe(ids.at(-1));
  });

  it('starts at 0-0 on a stream that does not exist yet and delivers its first entry', async () => {
    const stream = unique('stream');
    const handler = new RecordingHandler();
    const sub = subscriber({ streamKey: stream, handler, batchSize: 2 });
    await sub.start();
    expect(sub.lastId).toBe('0-0');
    const ids = [await add(stream, { a: '1' }), await add(stream, { a: '2' }), await add(stream, { a: '3' })];
    await waitFor(() => handler.entries.length >= 3);
    expect(handler.ids).toEqual(ids);
  });

  it('hands a batch handler each read whole; reads the next while one is handled, and hands it on only once that one has finished', async () => {
    const stream = unique('stream');
    const batches: string[][] = [];
    let release!: () => void;
    let firstBatchArrived!: () => void;
    const firstArrived = new Promise<void>((resolve) => (firstBatchArrived = resolve));
    const handler = {
      stream: 'client_events' as const,
      handle: (): void => {
        throw new Error('handle must not be called when handleBatch exists');
      },
      handleBatch: (entries: readonly { id: string }[]): Promise<void> => {
        batches.push(entries.map((e) => e.id));
        if (batches.length > 1) return Promise.resolve();
        firstBatchArrived();
        return new Promise<void>((resolve) => (release = resolve));
      },
    };
    const sub = subscriber({ streamKey: stream, handler, batchSize: 100 });
    await sub.start();
    const first = await add(stream, { n: '0' });
    await firstArrived;
    // While the first batch is being handled, more entries arrive: the next read goes ahead
    // (the cursor moves past the first entry) but hands nothing on before the first is handled.
    const later: string[] = [];
    for (let i = 1; i <= 5; i++) later.push(await add(stream, { n: String(i) }));
    await waitFor(() => sub.lastId !== first, { message: 'the next read went ahead' });
    expect(later).toContain(sub.lastId);
    expect(batches).toEqual([[first]]);
    release();
    await waitFor(() => batches.flat().length === 6, { message: 'all six entries handed over' });
    // Every entry once, in stream order, each read whole.
    expect(batches[0]).toEqual([first]);
    expect(batches.flat()).toEqual([first, ...later]);
    expect(sub.lastId).toBe(later.at(-1));
  });

  it('close() resolves only once the batch being handled has finished', async () => {
    const stream = unique('stream');
    let release!: () => void;
    let arrived!: () => void;
    const handedOn = new Promise<void>((resolve) => (arrived = resolve));
    let finished = false;
    const handler = {
      stream: 'client_events' as const,
      handle: (): void => undefined,
      handleBatch: async (): Promise<void> => {
        arrived();
        await new Promise<void>((resolve) => (release = resolve));
        finished = true;
      },
    };
    const sub = subscriber({ streamKey: stream, handler });
    await sub.start();
    await add(stream, { n: '0' });
    await handedOn;
    let closed = false;
    const closing = sub.close().then(() => (closed = true));
    // The blocking read is interrupted at once; the handled batch is not abandoned.
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    release();
    await closing;
    expect(finished).toBe(true);
  });

  it('does not stall the shared client while blocked in XREAD', async () => {
    const sub = subscriber({ streamKey: unique('stream'), blockMs: 5000 });
    await sub.start();
    await waitFor(async () => String(await admin.command(['CLIENT', 'LIST'])).includes('cmd=xread'), { message: 'XREAD is blocking' });
    const { ms, result } = await timed(() => client.command(['PING']));
    expect(result).toBe('PONG');
    expect(ms).toBeLessThan(200);
  });

  it('stop() interrupts a blocking XREAD BLOCK 5000 at once', async () => {
    const sub = subscriber({ streamKey: unique('stream'), blockMs: 5000 });
    await sub.start();
    await waitFor(async () => String(await admin.command(['CLIENT', 'LIST'])).includes('cmd=xread'), { message: 'XREAD is blocking' });
    const { ms, error } = await timed(() => sub.stop());
    expect(error).toBeUndefined();
    expect(ms).toBeLessThan(1000);
    await waitFor(async () => !String(await admin.command(['CLIENT', 'LIST'])).includes('cmd=xread'), { message: 'blocking connection gone' });
  });

  it('keeps going after a handler throws', async () => {
    const stream = unique('stream');
    const seen: string[] = [];
    const logger = recordingLogger();
    const sub = subscriber({
      streamKey: stream,
      logger,
      handler: {
        stream: 'client_events',
        handle(entry) {
          seen.push(entry.id);
          if (entry.fields.boom === '1') throw new Error('handler bug');
        },
      },
    });
    await sub.start();
    const ids = [await add(stream, { boom: '1' }), await add(stream, { boom: '0' })];
    await waitFor(() => seen.length >= 2);
    expect(seen).toEqual(ids);
    expect(logger.lines.some((l) => l.level === 'error' && l.message === 'stream entry handler failed' && l.fields.entry_id === ids[0])).toBe(true);
  });

  it('loses nothing across a pause/resume of Redis', async () => {
    const stream = unique('stream');
    const handler = new RecordingHandler();
    const sub = subscriber({ streamKey: stream, handler, blockMs: 200 });
    await sub.start();
    const first = await add(stream, { n: 'before' });
    await waitFor(() => handler.entries.length === 1);
    server.pause();
    await new Promise((resolve) => setTimeout(resolve, 300)); // outlast one BLOCK period while frozen
    server.resume();
    const later = [await add(stream, { n: 'after-1' }), await add(stream, { n: 'after-2' })];
    await waitFor(() => handler.entries.length >= 3, { timeoutMs: 10_000 });
    expect(handler.ids).toEqual([first, ...later]);
  });

  it('delivers entries written while Redis restarted (data kept), once and in order, and counts the reconnect', async () => {
    const stream = unique('stream');
    const metrics = new MetricsHarness();
    const handler = new RecordingHandler('client_events');
    const sub = subscriber({ streamKey: stream, handler, metrics: metrics.metrics, blockMs: 1000 });
    await sub.start();
    const before = [await add(stream, { n: 'b1' }), await add(stream, { n: 'b2' })];
    await waitFor(() => handler.entries.length === 2);

    await server.shutdownSave();
    await waitFor(async () => (await metrics.value('gateway_stream_subscriber_reconnects_total', { stream: 'client_events' })) >= 1, {
      message: 'reconnect counted',
    });
    await server.restart();
    // Both connections: the next test starts a subscriber on `client`.
    await waitFor(() => admin.isReady && client.isReady, { timeoutMs: 5000 });
    const after = [await add(stream, { n: 'a1' }), await add(stream, { n: 'a2' }), await add(stream, { n: 'a3' })];
    await waitFor(() => handler.entries.length >= 5, { timeoutMs: 10_000, message: 'entries after restart delivered' });
    expect(handler.ids).toEqual([...before, ...after]);
    expect(handler.reconnects).toBe(1);
    // Nothing more arrives (no duplicates) once the subscriber caught up.
    const extra = await add(stream, { n: 'last' });
    await waitFor(() => handler.entries.length >= 6);
    expect(handler.ids).toEqual([...before, ...after, extra]);
  });

  it('session events: malformed entries are skipped and counted, reconnect clears the session cache', async () => {
    const stream = unique('session-events');
    const metrics = new MetricsHarness();
    const cache = new SessionCache(new InMemorySessionStore(), { maxEntries: 100, ttlMs: 60_000 });
    const hub = new PushHub({ bufferSize: 8, metrics: metrics.metrics });
    const handler = new SessionEventsHandler({ cache, hub, metrics: metrics.metrics });
    const sub = subscriber({ streamKey: stream, handler, metrics: metrics.metrics, blockMs: 1000 });
    await sub.start();

    const snapshot = (ds: string) => ({ device_session_id: ds, user_id: 'u1', status: 'active', client_public_key: VALID_KEY });
    await add(stream, snapshot('ds-1'));
    await add(stream, { device_session_id: 'ds-bad', user_id: 'u1', status: 'weird', client_public_key: VALID_KEY });
    await add(stream, { user_id: 'u1' });
    await add(stream, snapshot('ds-2'));
    await waitFor(async () => (await metrics.value('gateway_stream_entries_consumed_total', { stream: 'session_events' })) === 4);
    expect(await metrics.value('gateway_stream_entries_malformed_total', { stream: 'session_events' })).toBe(2);
    expect(cache.size).toBe(2);

    await server.kill();
    await server.restart(); // data lost (never saved): the stream is gone, but the cache must go too
    await waitFor(() => cache.size === 0, { timeoutMs: 10_000, message: 'cache cleared after reconnect' });
    expect(await metrics.value('gateway_stream_subscriber_reconnects_total', { stream: 'session_events' })).toBeGreaterThanOrEqual(1);
    // Both connections: the next test starts a subscriber on `client`.
    await waitFor(() => admin.isReady && client.isReady, { timeoutMs: 5000 });
  });
});

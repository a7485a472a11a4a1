import { UserEventIndex, type StreamEntry } from '@edge-gateway/core';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisEventHistory, RedisStreamSubscriber, StreamContinuity, connectAndPing, type RedisClient } from '../src/index.js';
import { clientFor, MetricsHarness, RecordingHandler, unique } from './helpers.js';

/**
 * The per-user resume index (SPEC §8.3, issue 25) on a real Redis: fed by the client-events
 * subscriber, read by `RedisEventHistory`, a resume reads the device's own entries by id, not
 * every user's entries after its cursor.
 */

let server: RedisServerHandle;
let client: RedisClient;
let admin: RedisClient;
const subscribers: RedisStreamSubscriber[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  client = clientFor(server);
  admin = clientFor(server);
  await Promise.all([connectAndPing(client, 5000), connectAndPing(admin, 5000)]);
});
afterEach(async () => {
  await Promise.all(subscribers.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  client?.destroy();
  admin?.destroy();
  await server?.stop();
});

const event = (userId: string, n: number | string): string[] => ['user_id', userId, 'event_type', 'chat.message', 'payload_base64', Buffer.from(String(n)).toString('base64')];

const add = async (stream: string, fields: string[]): Promise<string> => String(await admin.command(['XADD', stream, '*', ...fields]));

/** `others` entries of 50 other users, written in pipelined batches. */
async function addOthers(stream: string, others: number): Promise<void> {
  for (let done = 0; done < others; done += 1000) {
    const batch: Array<Promise<unknown>> = [];
    for (let i = done; i < Math.min(others, done + 1000); i += 1) batch.push(admin.command(['XADD', stream, '*', ...event(`other-${i % 50}`, i)]));
    await Promise.all(batch);
  }
}

function setup(stream: string, indexMaxBytes?: number, indexBackfill?: number) {
  const harness = new MetricsHarness();
  const continuity = new StreamContinuity({ index: new UserEventIndex(indexMaxBytes), ...(indexBackfill !== undefined ? { indexBackfill } : {}) });
  const history = new RedisEventHistory(client, { streamKey: stream, continuity, metrics: harness.metrics });
  const read = async (source: 'index' | 'scan') => ({
    pages: await harness.value('gateway_push_history_reads_total', { source }),
    entries: await harness.value('gateway_push_history_entries_read_total', { source }),
  });
  return { continuity, history, read };
}

async function startSubscriber(stream: string, continuity: StreamContinuity): Promise<RedisStreamSubscriber> {
  const s = new RedisStreamSubscriber({ client, continuity, streamKey: stream, handler: new RecordingHandler(), reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
  subscribers.push(s);
  await s.start();
  return s;
}

const ids = (entries: readonly StreamEntry[]) => entries.map((e) => e.id);

describe('RedisEventHistory with the per-user index', () => {
  it('answers a resume past 30,000 other users’ entries with the device’s 5 entries, reading about that many', async () => {
    const stream = unique('index-events');
    const { continuity, history, read } = setup(stream);
    const subscriber = await startSubscriber(stream, continuity);
    const cursor = await add(stream, event('device-user', 'seen'));
    const missed: string[] = [];
    for (let round = 0; round < 5; round += 1) {
      await addOthers(stream, 6000);
      missed.push(await add(stream, event('device-user', round)));
    }
    // Entries the live parser drops (no user_id, an invalid one) are never in a page.
    await add(stream, ['event_type', 'x', 'payload_base64', '']);
    await add(stream, event('bad\u0001user', 'bad'));
    const last = await add(stream, event('other-1', 'last'));
    await waitFor(() => subscriber.lastId === last, { timeoutMs: 20_000, message: 'subscriber consumed the stream' });

    const page = await history.readAfter(cursor, 500, 'device-user');
    expect(page).toEqual({ entries: missed.map((id, i) => ({ id, fields: Object.fromEntries(pairs(event('device-user', i))) })), truncated: false, caughtUp: true });
    const after = await history.readAfter(missed[4] as string, 500, 'device-user');
    expect(after).toEqual({ entries: [], truncated: false, caughtUp: true });
    expect(await read('index')).toEqual({ pages: 2, entries: 5 });
    expect(await read('scan')).toEqual({ pages: 0, entries: 0 });

    // Without the index the same resume reads every entry after the cursor (the max_scan of issue 25).
    const scanning = new RedisEventHistory(client, { streamKey: stream });
    expect((await scanning.readAfter(cursor, 500, 'device-user')).entries.filter((e) => e.fields.user_id === 'device-user')).toEqual([]);
  });

  it('without a backfill, reads the stream itself for a cursor from before the subscriber started (a process that just started)', async () => {
    const stream = unique('index-events');
    const { continuity, history, read } = setup(stream, undefined, 0);
    const cursor = await add(stream, event('u', 0));
    const before = await add(stream, event('u', 1));
    await add(stream, event('v', 2));
    const subscriber = await startSubscriber(stream, continuity);
    const later = await add(stream, event('u', 3));
    await waitFor(() => subscriber.lastId === later);
    expect(ids((await history.readAfter(cursor, 10, 'u')).entries)).toEqual([before, expect.any(String), later]);
    expect(await read('scan')).toEqual({ pages: 1, entries: 3 });
    expect((await read('index')).pages).toBe(0);
    // The entry the subscriber started after is covered: every entry after it is known.
    expect(ids((await history.readAfter(await lastBefore(stream, later), 10, 'u')).entries)).toEqual([later]);
    expect((await read('index')).pages).toBe(1);
  });

  it('a process that just started (a fleet restart) answers a resume from before its start out of the index: the stream tail was read into it', async () => {
    const stream = unique('index-events');
    const { continuity, history, read } = setup(stream, undefined, 250);
    // 301 entries before the start, the backfill reads the last 250 (three pages): the cursor is
    // the 61st, inside them; the first ones are not.
    await add(stream, event('u', 'too old'));
    for (let i = 0; i < 59; i += 1) await add(stream, event(`other-${i % 7}`, `old ${i}`));
    const cursor = await add(stream, event('u', 'seen'));
    const mine: string[] = [];
    for (let i = 0; i < 240; i += 1) {
      const id = await add(stream, event(i % 60 === 0 ? 'u' : `other-${i % 7}`, i));
      if (i % 60 === 0) mine.push(id);
    }
    const subscriber = await startSubscriber(stream, continuity);
    const later = await add(stream, event('u', 'after start'));
    await waitFor(() => subscriber.lastId === later);
    expect(ids((await history.readAfter(cursor, 10, 'u')).entries)).toEqual([...mine, later]);
    expect(await read('scan')).toEqual({ pages: 0, entries: 0 });
    expect(await read('index')).toEqual({ pages: 1, entries: mine.length + 1 });
    // The backfill stopped at 250 entries: the first entry of the stream is not covered, so a
    // cursor before the backfilled tail is read from the stream.
    expect(continuity.index?.read('u', '0-0', 10)).toBeUndefined();
    expect(continuity.index?.coveredFrom).not.toBe('0-0');
    // A stream shorter than the backfill is covered whole.
    const short = unique('index-events');
    const whole = setup(short, undefined, 250);
    const first = await add(short, event('w', 0));
    await add(short, event('w', 1));
    await startSubscriber(short, whole.continuity);
    expect(whole.continuity.index?.coveredFrom).toBe('0-0');
    expect(ids((await whole.history.readAfter('0-0', 10, 'w')).entries)[0]).toBe(first);
    expect((await whole.read('index')).pages).toBe(1);
  });

  it('reads the stream itself once the index evicted entries after the cursor', async () => {
    const stream = unique('index-events');
    // Room for about 20 entries of 2 users.
    const { continuity, history, read } = setup(stream, 2 * 200 + 20 * 100);
    const subscriber = await startSubscriber(stream, continuity);
    const cursor = await add(stream, event('u', 'seen'));
    const mine: string[] = [];
    for (let i = 0; i < 40; i += 1) {
      const id = await add(stream, event(i % 4 === 0 ? 'u' : 'v', i));
      if (i % 4 === 0) mine.push(id);
    }
    await waitFor(async () => subscriber.lastId === (await lastId(stream)));
    expect(continuity.index?.read('u', cursor, 10)).toBeUndefined();
    const page = await history.readAfter(cursor, 100, 'u');
    expect(page.entries.filter((e) => e.fields.user_id === 'u').map((e) => e.id)).toEqual(mine);
    expect(await read('scan')).toEqual({ pages: 1, entries: 40 });
    expect((await read('index')).pages).toBe(0);
  });

  it('stops at what the subscriber consumed (caughtUp: the live feed brings the rest), and reads the stream when an indexed entry is gone', async () => {
    const stream = unique('index-events');
    const { continuity, history, read } = setup(stream);
    // Fed by hand: the subscriber consumed up to `through` and no further yet.
    const cursor = await add(stream, event('u', 'seen'));
    continuity.startedAfter(cursor);
    const a = await add(stream, event('u', 'a'));
    const other = await add(stream, event('v', 'b'));
    const through = await add(stream, event('u', 'c'));
    const consume = (id: string, user: string) => continuity.consumedEntry({ id, fields: { user_id: user } });
    consume(a, 'u');
    consume(other, 'v');
    consume(through, 'u');
    // Written, not consumed yet: a stream registered now gets them from the live feed, so the
    // page neither reads them nor any other user's entry after the position.
    const unconsumed = [await add(stream, event('v', 'd')), await add(stream, event('u', 'e'))];
    const page = await history.readAfter(cursor, 100, 'u');
    expect(ids(page.entries)).toEqual([a, through]);
    expect(page).toMatchObject({ truncated: false, caughtUp: true });
    expect(await read('index')).toEqual({ pages: 1, entries: 2 });
    // A page of exactly `count` user entries ends there, not caught up; the next continues after it.
    const first = await history.readAfter(cursor, 1, 'u');
    expect(ids(first.entries)).toEqual([a]);
    expect(first.caughtUp).toBeUndefined();
    expect(ids((await history.readAfter(a, 1, 'u')).entries)).toEqual([through]);
    // Once consumed, the index answers them too.
    consume(unconsumed[0] as string, 'v');
    consume(unconsumed[1] as string, 'u');
    expect(ids((await history.readAfter(through, 100, 'u')).entries)).toEqual([unconsumed[1]]);

    // An indexed entry deleted since: only the stream read can say what is left and that it is incomplete.
    await admin.command(['XDEL', stream, through]);
    const after = await history.readAfter(cursor, 100, 'u');
    expect(ids(after.entries)).toEqual([a, other, ...unconsumed]);
    expect(after.truncated).toBe(true);
    expect(after.caughtUp).toBeUndefined();
    expect((await read('scan')).pages).toBe(1);
  });

  it('a subscriber that stops leaves an index that answers nothing', async () => {
    const stream = unique('index-events');
    const { continuity, history, read } = setup(stream);
    const subscriber = await startSubscriber(stream, continuity);
    const cursor = await add(stream, event('u', 0));
    const next = await add(stream, event('u', 1));
    await waitFor(() => subscriber.lastId === next);
    expect(continuity.index?.read('u', cursor, 10)?.ids).toEqual([next]);
    await subscriber.stop();
    expect(ids((await history.readAfter(cursor, 10, 'u')).entries)).toEqual([next]);
    expect((await read('scan')).pages).toBe(1);
    expect((await read('index')).pages).toBe(0);
  });
});

function pairs(flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}

async function lastId(stream: string): Promise<string> {
  const reply = (await admin.command(['XREVRANGE', stream, '+', '-', 'COUNT', '1'])) as unknown as Array<[string, unknown]>;
  return String(reply[0]?.[0] ?? '0-0');
}

/** The id of the entry right before `id`. */
async function lastBefore(stream: string, id: string): Promise<string> {
  const reply = (await admin.command(['XREVRANGE', stream, `(${id}`, '-', 'COUNT', '1'])) as unknown as Array<[string, unknown]>;
  return String(reply[0]?.[0]);
}

import type { StreamEntry, StreamEntryHandler, StreamHistoryLoss } from '@edge-gateway/core';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisEventHistory, RedisStreamSubscriber, StreamContinuity, connectAndPing, type RedisClient } from '../src/index.js';
import { MetricsHarness, RecordingHandler, clientFor, recordingLogger, unique } from './helpers.js';

/**
 * What the client-events subscriber and the resume history know when a failover lost entries
 * (SPEC §5.6), on one server: the "new master" is the same server with the stream rewritten,
 * and the reader's blocking connection is killed so that it reconnects and checks the history.
 */

let server: RedisServerHandle;
let admin: RedisClient;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  server = await startRedisServer();
  admin = clientFor(server, { commandTimeoutMs: 2000 });
  await connectAndPing(admin, 5000);
});
afterEach(async () => {
  for (const done of cleanup.splice(0).reverse()) await done();
});
afterAll(async () => {
  admin?.destroy();
  await server?.stop();
});

const event = (userId: string, label: string): string[] => ['user_id', userId, 'event_type', 'chat.n', 'payload_base64', Buffer.from(label).toString('base64')];
const xadd = async (stream: string, id: string, fields: string[]): Promise<string> => String(await admin.command(['XADD', stream, id, ...fields]));

/** A subscriber on its own named client, and a way to cut its blocking connection. */
async function reader(stream: string, handler: StreamEntryHandler, continuity: StreamContinuity) {
  const name = unique('loss-reader').replace(/[^A-Za-z0-9-]/g, '-');
  const client = clientFor(server, { clientName: name });
  await connectAndPing(client, 5000);
  const metrics = new MetricsHarness();
  const logs = recordingLogger();
  const subscriber = new RedisStreamSubscriber({
    client,
    streamKey: stream,
    handler,
    continuity,
    blockMs: 500,
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    metrics: metrics.metrics,
    logger: logs,
  });
  await subscriber.start();
  cleanup.push(async () => {
    await subscriber.stop();
    client.destroy();
  });
  const cut = async (): Promise<void> => {
    const list = String(await admin.command(['CLIENT', 'LIST']));
    const line = list.split('\n').find((l) => l.includes(` name=${name}:stream `));
    const id = /(?:^|\s)id=(\d+)/.exec(line ?? '')?.[1];
    if (id === undefined) throw new Error('blocking connection not found');
    await admin.command(['CLIENT', 'KILL', 'ID', id]);
  };
  return { subscriber, metrics, logs, cut };
}

/**
 * A reader that lags (as one on a replica): the handler stalls on the first read until released,
 * and the subscriber, which reads one batch ahead of the batch being handled, holds `filler`
 * read but not handed on, so entries written after it are neither read nor consumed.
 */
async function lagBehind(stream: string, subscriber: RedisStreamSubscriber, recorder: RecordingHandler, first: string): Promise<string> {
  await waitFor(() => recorder.ids.includes(first), { message: 'first entry consumed' });
  const filler = await xadd(stream, '*', event('u-z', 'filler'));
  await waitFor(() => subscriber.lastId === filler, { message: 'the read ahead holds the filler' });
  return filler;
}

/** A handler that records entries and stalls on its first read until released (a lagging replica reader). */
function stallingHandler() {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const recorder = new RecordingHandler();
  const handler: StreamEntryHandler = {
    stream: 'client_events',
    handleBatch: async (entries: readonly StreamEntry[]) => {
      for (const entry of entries) recorder.handle(entry);
      await gate;
    },
    handle: (entry) => recorder.handle(entry),
    onHistoryLost: (loss: StreamHistoryLoss) => recorder.onHistoryLost(loss),
  };
  return { handler, recorder, release };
}

describe('history lost in a failover (SPEC §5.6)', () => {
  it('no remembered entry left: reads on from the oldest one it can judge (never 0-0), tells that the loss start is unknown', async () => {
    const stream = unique('client-events');
    const continuity = new StreamContinuity({ consumedCapacity: 2 });
    const handler = new RecordingHandler();
    for (const seq of [1, 2]) await xadd(stream, `100-${seq}`, event('u-old', `old-${seq}`));
    const { logs, metrics, cut } = await reader(stream, handler, continuity);
    await xadd(stream, '200-1', event('u-a', 'lost-a'));
    await xadd(stream, '200-2', event('u-b', 'lost-b'));
    await waitFor(() => handler.ids.includes('200-2'), { message: 'entries consumed' });

    // The "new master" kept an older prefix (consumed long ago, no longer remembered) and
    // reused the id 200-1 for another entry.
    await admin.command(['DEL', stream]);
    for (const seq of [1, 2]) await xadd(stream, `100-${seq}`, event('u-old', `old-${seq}`));
    await xadd(stream, '200-1', event('u-c', 'new-200-1'));
    await cut();
    await waitFor(() => handler.losses.length === 1, { message: 'loss reported' });
    const next = await xadd(stream, '*', event('u-c', 'later'));
    await waitFor(() => handler.ids.includes(next), { message: 'later entry delivered' });

    // The old prefix is not handed out again; the new entry with the reused id is.
    expect(handler.entries.map((e) => Buffer.from(e.fields['payload_base64'] ?? '', 'base64').toString())).toEqual(['lost-a', 'lost-b', 'new-200-1', 'later']);
    expect(handler.losses).toEqual([{ after: undefined, upTo: '200-2', userIds: ['u-a', 'u-b'] }]);
    const line = logs.lines.find((l) => l.message.startsWith('stream history diverged'));
    expect(line?.fields).toMatchObject({ last_consumed: '200-2', resume_after: '200-0', common_entry_found: false, lost_after: '(unknown)', users_with_lost_entries: 2 });
    expect(await metrics.value('gateway_stream_history_diverged_total', { stream: 'client_events' })).toBe(1);
    // A resume after a lost id is incomplete although the id exists again.
    const history = new RedisEventHistory(admin, { streamKey: stream, continuity });
    await expect(history.readAfter('200-1', 10)).resolves.toMatchObject({ truncated: false, diverged: true });
    await expect(history.readAfter('100-2', 10)).resolves.toMatchObject({ truncated: false });
  });

  it('an empty new master: nothing is read twice, the next entries are delivered', async () => {
    const stream = unique('client-events');
    const continuity = new StreamContinuity();
    const handler = new RecordingHandler();
    const { logs, cut } = await reader(stream, handler, continuity);
    for (const seq of [1, 2, 3]) await xadd(stream, `300-${seq}`, event('u-a', `lost-${seq}`));
    await waitFor(() => handler.ids.includes('300-3'), { message: 'entries consumed' });
    await admin.command(['DEL', stream]);
    await cut();
    await waitFor(() => handler.losses.length === 1, { message: 'loss reported' });
    // Written by a new master whose clock is behind: still after the oldest remembered entry.
    const next = [await xadd(stream, '300-2', event('u-a', 'new-1')), await xadd(stream, '*', event('u-a', 'new-2'))];
    await waitFor(() => next.every((id) => handler.ids.includes(id)), { message: 'new entries delivered' });
    expect(handler.ids).toEqual(['300-1', '300-2', '300-3', ...next]);
    expect(logs.lines.find((l) => l.message.startsWith('stream history diverged'))?.fields).toMatchObject({ resume_after: '300-0', unseen_entries_below_cursor: 0 });
    expect(handler.losses).toEqual([{ after: undefined, upTo: '300-3', userIds: ['u-a'] }]);
  });

  it('entries a resume read ahead of the reader, then lost: reported with their users, the reader keeps its place', async () => {
    const stream = unique('client-events');
    const continuity = new StreamContinuity();
    // The reader stalls on its first read (a lagging replica): a resume reads past it.
    const { handler, recorder, release } = stallingHandler();
    const { cut, logs, subscriber } = await reader(stream, handler, continuity);
    const first = await xadd(stream, '*', event('u-a', 'first'));
    const filler = await lagBehind(stream, subscriber, recorder, first);
    const ahead = [await xadd(stream, '*', event('u-b', 'ahead-1')), await xadd(stream, '*', event('u-c', 'ahead-2'))];
    const history = new RedisEventHistory(admin, { streamKey: stream, continuity });
    const page = await history.readAfter(filler, 10);
    expect(page.entries.map((e) => e.id)).toEqual(ahead);

    // Lost before the reader saw them; the new master wrote another entry after.
    await admin.command(['XDEL', stream, ...ahead]);
    const fresh = await xadd(stream, '*', event('u-a', 'fresh'));
    await cut();
    release();
    await waitFor(() => recorder.ids.includes(fresh), { message: 'fresh entry delivered' });
    expect(recorder.ids).toEqual([first, filler, fresh]);
    expect(recorder.losses).toEqual([{ after: filler, upTo: ahead[1], userIds: ['u-b', 'u-c'] }]);
    expect(logs.lines.find((l) => l.message.startsWith('stream history diverged'))?.fields).toMatchObject({ last_consumed: filler, resume_after: filler, lost_after: filler });
    await expect(history.readAfter(ahead[0] as string, 10)).resolves.toMatchObject({ diverged: true });
  });

  it('entries read ahead and still on the master are not reported', async () => {
    const stream = unique('client-events');
    const continuity = new StreamContinuity();
    const { handler, recorder, release } = stallingHandler();
    const { cut, metrics, subscriber } = await reader(stream, handler, continuity);
    const first = await xadd(stream, '*', event('u-a', 'first'));
    const filler = await lagBehind(stream, subscriber, recorder, first);
    const ahead = [await xadd(stream, '*', event('u-a', '1')), await xadd(stream, '*', event('u-a', '2'))];
    await new RedisEventHistory(admin, { streamKey: stream, continuity }).readAfter(filler, 10);
    expect(continuity.ahead.size).toBe(2);
    await cut();
    release();
    const next = await xadd(stream, '*', event('u-a', '3'));
    await waitFor(() => recorder.ids.includes(next), { message: 'after reconnect' });
    expect(recorder.ids).toEqual([first, filler, ...ahead, next]);
    expect(recorder.losses).toEqual([]);
    expect(await metrics.value('gateway_stream_history_diverged_total', { stream: 'client_events' })).toBe(0);
  });

  it('a resume while the history is not checked yet waits for the check, and is incomplete when it does not come', async () => {
    const stream = unique('client-events');
    const continuity = new StreamContinuity();
    const id = await xadd(stream, '*', event('u-a', 'x'));
    const next = await xadd(stream, '*', event('u-a', 'y'));
    const history = new RedisEventHistory(admin, { streamKey: stream, continuity, verifyWaitMs: 100 });
    continuity.markUnverified();
    const started = performance.now();
    const page = await history.readAfter(id, 10);
    expect(page).toMatchObject({ truncated: false, diverged: true });
    expect(page.entries.map((e) => e.id)).toEqual([next]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    // Not remembered as read ahead: they came from a history nobody checked.
    expect(continuity.ahead.size).toBe(0);
    // Later reads do not wait again for a check that is already late.
    const again = performance.now();
    await expect(history.readAfter(id, 10)).resolves.toMatchObject({ diverged: true });
    expect(performance.now() - again).toBeLessThan(90);
    continuity.markVerified();
    continuity.markUnverified();
    const waiting = history.readAfter(id, 10);
    continuity.markVerified();
    const checked = await waiting;
    expect(checked.diverged).toBeUndefined();
    expect(continuity.ahead.size).toBe(1);
  });
});

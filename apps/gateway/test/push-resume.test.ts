import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { type VerifiedEvent } from '@edge-gateway/client';
import { freePort, startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import {
  ContinuousPublisher,
  TEST_BACKOFF,
  fastReconnectClient,
  metricValue,
  webClientFor,
  scrape,
  targetedIdsAfter,
} from './push-resume-support.js';
import { EventCollector, activeDeviceOn, connectRedis, publishEvent, take, writeSession, type Device, type RawRedis } from '@edge-gateway/test-utils/system-support';

const SERVER_TIME = 'gateway.server_time';
const INCOMPLETE = 'gateway.resume_incomplete';

let redis: RedisServerHandle;
let raw: RawRedis;
let signer: ReturnType<typeof writeSignerKey>;
let streamSeq = 0;

/**
 * One gateway for the tests of the enclosing `describe`, reading `clientEvents`: started in
 * its `beforeAll` (which fills in the returned addresses), stopped in its `afterAll`.
 */
function gatewayPerDescribe(clientEvents: string, extra: Record<string, string> = {}): Awaited<ReturnType<GatewayProcess['started']>> {
  const addresses: Awaited<ReturnType<GatewayProcess['started']>> = { publicHttp: '', grpc: '', adminHttp: undefined };
  let gateway: GatewayProcess | undefined;
  beforeAll(async () => {
    gateway = new GatewayProcess(envFor(clientEvents, extra));
    Object.assign(addresses, await gateway.started());
  });
  afterAll(async () => {
    await gateway?.stop();
  });
  return addresses;
}

function envFor(clientEvents: string, extra: Record<string, string> = {}): Record<string, string> {
  return gatewayEnv(redis, signer.path, {
    GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_CLIENT_EVENTS_REDIS_STREAM: clientEvents,
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
    ...extra,
  });
}

/** Each gateway gets its own client-events stream, so trims and limits don't leak between tests. */
const newStream = (label: string) => `test:client-events:${label}:${(streamSeq += 1)}`;

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  signer = writeSignerKey();
});

afterAll(async () => {
  await raw?.quit();
  await redis?.stop();
});

const activeDevice = (userId: string, label?: string): Promise<Device> => activeDeviceOn(raw, userId, label);

/** Reads until an event with `eventId` arrived; returns everything read, that event included. */
async function takeThrough(iterator: AsyncIterator<VerifiedEvent>, eventId: string): Promise<VerifiedEvent[]> {
  const out: VerifiedEvent[] = [];
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) throw new Error(`stream ended before ${eventId}; got ${out.map((e) => e.eventId || e.eventType).join(',')}`);
    out.push(next.value);
    if (next.value.eventId === eventId) return out;
  }
}

/**
 * Subscribes, receives `before` events for `device`, then cancels the stream (the device goes
 * offline) and returns its `lastEventId`.
 */
async function receiveThenDisconnect(
  stream: string,
  grpc: string,
  device: Device,
  before: number,
): Promise<{ cursor: string; client: ReturnType<typeof fastReconnectClient> }> {
  const client = fastReconnectClient(device, grpc, signer.publicKeyRaw);
  const abort = new AbortController();
  const events = client.subscribe({ signal: abort.signal })[Symbol.asyncIterator]();
  const [bootstrap] = await take(events, 1);
  expect(bootstrap?.eventType).toBe(SERVER_TIME);
  const ids: string[] = [];
  for (let i = 0; i < before; i += 1) {
    ids.push(await publishEvent(raw, { userId: device.userId, eventType: 'chat.message', payload: Buffer.from(`before-${i}`) }, stream));
  }
  const got = await take(events, before);
  expect(got.map((e) => e.eventId)).toEqual(ids);
  abort.abort();
  await events.return?.(undefined);
  expect(client.lastEventId).toBe(ids.at(-1));
  return { cursor: client.lastEventId, client };
}

/** `gateway.resume_incomplete` as SPEC §8.3 has it: no id, the subscriber's ids, empty payload. */
function expectIncompleteFor(event: VerifiedEvent | undefined, device: Device): void {
  expect(event).toMatchObject({ eventType: INCOMPLETE, eventId: '', userId: device.userId, deviceSessionId: device.deviceSessionId });
  expect(event?.payload.length).toBe(0);
}

describe('resume with the default limits', () => {
  const stream = newStream('default');
  const addr = gatewayPerDescribe(stream);

  it('replays exactly the missed events in order, then the live feed, without duplicates', async () => {
    const device = await activeDevice('user-resume', 'resume');
    const sibling = await activeDevice('user-resume', 'sibling');
    const { cursor, client } = await receiveThenDisconnect(stream, addr.grpc, device, 2);
    const before = await scrape(addr.adminHttp as string);
    try {
      // Missed while offline: events for this device (broadcast to the user and targeted at this
      // session), interleaved with other users' events and events for the sibling session only.
      const missed: string[] = [];
      for (let i = 0; i < 12; i += 1) {
        missed.push(await publishEvent(raw, { userId: 'user-resume', eventType: 'chat.message', payload: Buffer.from(`m-${i}`) }, stream));
        await publishEvent(raw, { userId: `someone-else-${i % 3}`, eventType: 'chat.message', payload: Buffer.from('x') }, stream);
        await publishEvent(raw, { userId: 'user-resume', deviceSessionId: sibling.deviceSessionId, eventType: 'device.only', payload: Buffer.from('s') }, stream);
        if (i % 3 === 0) {
          missed.push(
            await publishEvent(raw, { userId: 'user-resume', deviceSessionId: device.deviceSessionId, eventType: 'device.only', payload: Buffer.from(`d-${i}`) }, stream),
          );
        }
      }
      // Another user's entry that names this session: never delivered (SPEC §8.3).
      await publishEvent(raw, { userId: 'intruder', deviceSessionId: device.deviceSessionId, eventType: 'device.only', payload: Buffer.from('no') }, stream);
      expect(await targetedIdsAfter(raw, stream, cursor, device)).toEqual(missed);

      const abort = new AbortController();
      const events = client.subscribe({ resumeAfterEventId: cursor, signal: abort.signal })[Symbol.asyncIterator]();
      const [bootstrap, ...replayed] = await take(events, 1 + missed.length);
      expect(bootstrap?.eventType).toBe(SERVER_TIME);
      expect(replayed.map((e) => e.eventId)).toEqual(missed);
      expect(replayed.every((e) => e.userId === 'user-resume' && (e.deviceSessionId === '' || e.deviceSessionId === device.deviceSessionId))).toBe(true);
      expect(Buffer.from(replayed[0]?.payload ?? []).toString()).toBe('m-0');

      // Then the live feed, and nothing replayed twice: the next events are exactly the live ones.
      const live = [
        await publishEvent(raw, { userId: 'user-resume', eventType: 'chat.message', payload: Buffer.from('live-1') }, stream),
        await publishEvent(raw, { userId: 'user-resume', deviceSessionId: sibling.deviceSessionId, eventType: 'device.only', payload: Buffer.from('s') }, stream),
        await publishEvent(raw, { userId: 'user-resume', deviceSessionId: device.deviceSessionId, eventType: 'device.only', payload: Buffer.from('live-2') }, stream),
      ];
      const after = await takeThrough(events, live[2] as string);
      expect(after.map((e) => e.eventId)).toEqual([live[0], live[2]]);
      expect(client.lastEventId).toBe(live[2]);
      abort.abort();
      await events.return?.(undefined);

      const metrics = await scrape(addr.adminHttp as string);
      expect(metricValue(metrics, 'gateway_push_resumes_total') - metricValue(before, 'gateway_push_resumes_total')).toBe(1);
      expect(
        metricValue(metrics, 'gateway_push_resume_replayed_events_total') - metricValue(before, 'gateway_push_resume_replayed_events_total'),
      ).toBe(missed.length);
      expect(metricValue(metrics, 'gateway_push_resumes_incomplete_total') - metricValue(before, 'gateway_push_resumes_incomplete_total')).toBe(0);
    } finally {
      client.close();
    }
  });

  it('a replay longer than GATEWAY_PUSH_STREAM_BUFFER to a slow reader survives live events meanwhile', async () => {
    const device = await activeDevice('user-long', 'long');
    const { cursor, client } = await receiveThenDisconnect(stream, addr.grpc, device, 1);
    try {
      // 600 missed events of 1 KiB: far more than the buffer (256) and the transport windows.
      const payload = Buffer.alloc(1024, 1);
      const consumed = async () => metricValue(await scrape(addr.adminHttp as string), 'gateway_stream_entries_consumed_total', { stream: 'client_events' });
      const consumedBefore = await consumed();
      const multi = raw.multi();
      for (let i = 0; i < 600; i += 1) {
        multi.xAdd(stream, '*', { user_id: 'user-long', event_type: 'bulk.item', payload_base64: payload.toString('base64') });
      }
      const missed = (await multi.exec()) as unknown as string[];
      // Let the gateway's subscriber get past the burst first: a stream still held for its
      // replay queues live events too, bounded by GATEWAY_PUSH_STREAM_BUFFER; this test is about the replay.
      await waitFor(async () => (await consumed()) >= consumedBefore + missed.length, { timeoutMs: 10_000, message: 'burst consumed' });
      const abort = new AbortController();
      const events = client.subscribe({ resumeAfterEventId: cursor, signal: abort.signal })[Symbol.asyncIterator]();
      const [bootstrap] = await take(events, 1);
      expect(bootstrap?.eventType).toBe(SERVER_TIME);
      // The app is not reading yet, so most of the replay still waits in the gateway; live
      // events now must queue behind it, not overflow the stream.
      const live = [
        await publishEvent(raw, { userId: 'user-long', eventType: 'chat.message', payload: Buffer.from('live-1') }, stream),
        await publishEvent(raw, { userId: 'user-long', eventType: 'chat.message', payload: Buffer.from('live-2') }, stream),
      ];
      const rest = await takeThrough(events, live[1] as string);
      expect(rest.map((e) => e.eventId)).toEqual([...missed, ...live]);
      abort.abort();
      await events.return?.(undefined);
    } finally {
      client.close();
    }
  });

  it('loses and repeats nothing while a publisher writes continuously during the resume', async () => {
    const device = await activeDevice('user-busy', 'busy');
    const sibling = await activeDevice('user-busy', 'busy-sibling');
    const { cursor, client } = await receiveThenDisconnect(stream, addr.grpc, device, 3);
    try {
      for (let i = 0; i < 40; i += 1) {
        await publishEvent(raw, { userId: i % 2 === 0 ? 'user-busy' : 'busy-other', eventType: 'chat.message', payload: Buffer.from(`m-${i}`) }, stream);
      }
      const publisher = new ContinuousPublisher(
        raw,
        stream,
        [
          { userId: 'user-busy' },
          { userId: 'busy-other' },
          { userId: 'user-busy', deviceSessionId: device.deviceSessionId },
          { userId: 'user-busy', deviceSessionId: sibling.deviceSessionId },
        ],
        3,
      );
      const received: VerifiedEvent[] = [];
      const abort = new AbortController();
      try {
        await waitFor(() => publisher.published >= 10);
        const events = client.subscribe({ resumeAfterEventId: cursor, signal: abort.signal })[Symbol.asyncIterator]();
        const startedAt = publisher.published;
        const consumer = (async () => {
          for (;;) {
            const next = await events.next();
            if (next.done === true) return;
            received.push(next.value);
          }
        })();
        // Keep publishing well past the handoff, then stop and mark the end.
        await waitFor(() => received.length > 0 && publisher.published >= startedAt + 150, { timeoutMs: 20_000 });
        await publisher.stop();
        const marker = await publishEvent(raw, { userId: 'user-busy', eventType: 'feed.end', payload: Buffer.alloc(0) }, stream);
        await waitFor(() => received.some((e) => e.eventId === marker), { timeoutMs: 10_000, message: 'marker event' });
        abort.abort();
        await consumer;
      } finally {
        abort.abort();
        await publisher.stop();
      }
      const expected = await targetedIdsAfter(raw, stream, cursor, device);
      expect(expected.length).toBeGreaterThan(100);
      expect(received[0]?.eventType).toBe(SERVER_TIME);
      expect(received.filter((e) => e.eventType.startsWith('gateway.')).length).toBe(1);
      expect(received.slice(1).map((e) => e.eventId)).toEqual(expected);
    } finally {
      client.close();
    }
  });
});

/**
 * The shape of every incomplete resume (SPEC §8.3): `device` misses what `missWhileAway` writes
 * (it returns the ids the resume must replay), resumes from its cursor, and gets the bootstrap,
 * `gateway.resume_incomplete`, exactly those ids, then the live feed. The gateway counts one
 * resume, that many replayed events, one incomplete resume for `reason` and none for `notFor`.
 */
async function incompleteResume(
  addr: Awaited<ReturnType<GatewayProcess['started']>>,
  stream: string,
  device: Device,
  reason: string,
  missWhileAway: (cursor: string) => Promise<string[]>,
  notFor: readonly string[] = [],
): Promise<void> {
  const { cursor, client } = await receiveThenDisconnect(stream, addr.grpc, device, 1);
  const before = await scrape(addr.adminHttp as string);
  try {
    const expected = await missWhileAway(cursor);
    const abort = new AbortController();
    const events = client.subscribe({ resumeAfterEventId: cursor, signal: abort.signal })[Symbol.asyncIterator]();
    const [bootstrap, incomplete, ...replayed] = await take(events, 2 + expected.length);
    expect(bootstrap?.eventType).toBe(SERVER_TIME);
    expectIncompleteFor(incomplete, device);
    expect(replayed.map((e) => e.eventId)).toEqual(expected);
    // The live feed continues; nothing else of what was missed is sent.
    const live = await publishEvent(raw, { userId: device.userId, eventType: 'chat.message', payload: Buffer.from('live') }, stream);
    expect((await takeThrough(events, live)).map((e) => e.eventId)).toEqual([live]);
    abort.abort();
    await events.return?.(undefined);

    const metrics = await scrape(addr.adminHttp as string);
    const delta = (name: string, labels: Record<string, string> = {}) => metricValue(metrics, name, labels) - metricValue(before, name, labels);
    expect(delta('gateway_push_resumes_total')).toBe(1);
    expect(delta('gateway_push_resume_replayed_events_total')).toBe(expected.length);
    expect(delta('gateway_push_resumes_incomplete_total', { reason })).toBe(1);
    for (const other of notFor) expect(delta('gateway_push_resumes_incomplete_total', { reason: other })).toBe(0);
  } finally {
    client.close();
  }
}

describe('trimmed stream', () => {
  const stream = newStream('trimmed');
  const addr = gatewayPerDescribe(stream);

  it('sends gateway.resume_incomplete right after the bootstrap, then what is left, then the live feed', async () => {
    const device = await activeDevice('user-trim', 'trim');
    await incompleteResume(addr, stream, device, 'truncated', async (cursor) => {
      for (let i = 0; i < 10; i += 1) {
        await publishEvent(raw, { userId: 'user-trim', eventType: 'chat.message', payload: Buffer.from(`m-${i}`) }, stream);
        await publishEvent(raw, { userId: 'trim-other', eventType: 'chat.message', payload: Buffer.from('x') }, stream);
      }
      await raw.sendCommand(['XTRIM', stream, 'MAXLEN', '7']);
      const first = (await raw.xRange(stream, '-', '+', { COUNT: 1 }))?.[0]?.id as string;
      expect(first > cursor).toBe(true);
      const remaining = await targetedIdsAfter(raw, stream, cursor, device);
      expect(remaining.length).toBeGreaterThan(0);
      return remaining;
    });
  });
});

describe('resume limits', () => {
  const stream = newStream('limits');
  // The other tests' payloads are a few bytes each: far below MAX_BYTES. The resume index is off
  // (0): these resumes scan the stream, so MAX_SCAN counts other users' entries.
  const addr = gatewayPerDescribe(stream, {
    GATEWAY_PUSH_RESUME_MAX_EVENTS: '5',
    GATEWAY_PUSH_RESUME_MAX_SCAN: '20',
    GATEWAY_PUSH_RESUME_MAX_BYTES: '1000',
    GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES: '0',
  });

  it('GATEWAY_PUSH_RESUME_MAX_EVENTS: replays exactly that many, after resume_incomplete, then the live feed', async () => {
    const device = await activeDevice('user-max-events', 'max-events');
    await incompleteResume(
      addr,
      stream,
      device,
      'max_events',
      async () => {
        const missed: string[] = [];
        for (let i = 0; i < 8; i += 1) {
          missed.push(await publishEvent(raw, { userId: 'user-max-events', eventType: 'chat.message', payload: Buffer.from(`m-${i}`) }, stream));
          await publishEvent(raw, { userId: 'max-events-other', eventType: 'chat.message', payload: Buffer.from('x') }, stream);
        }
        return missed.slice(0, 5);
      },
      ['max_scan', 'max_bytes'],
    );
  });

  it('GATEWAY_PUSH_RESUME_MAX_BYTES: replays the events whose payloads fit, after resume_incomplete, then the live feed', async () => {
    const device = await activeDevice('user-max-bytes', 'max-bytes');
    await incompleteResume(
      addr,
      stream,
      device,
      'max_bytes',
      async () => {
        const missed: string[] = [];
        // 300 bytes each: three fit in 1000, the fourth would not (fewer than MAX_EVENTS).
        for (let i = 0; i < 4; i += 1) {
          missed.push(await publishEvent(raw, { userId: 'user-max-bytes', eventType: 'chat.message', payload: Buffer.alloc(300, i) }, stream));
        }
        return missed.slice(0, 3);
      },
      ['max_events'],
    );
  });

  it('GATEWAY_PUSH_RESUME_MAX_SCAN: stops scanning past many other users’ entries and says so', async () => {
    const device = await activeDevice('user-max-scan', 'max-scan');
    await incompleteResume(
      addr,
      stream,
      device,
      'max_scan',
      async () => {
        const early = [
          await publishEvent(raw, { userId: 'user-max-scan', eventType: 'chat.message', payload: Buffer.from('e-1') }, stream),
          await publishEvent(raw, { userId: 'user-max-scan', eventType: 'chat.message', payload: Buffer.from('e-2') }, stream),
        ];
        for (let i = 0; i < 40; i += 1) {
          await publishEvent(raw, { userId: `scan-other-${i % 4}`, eventType: 'chat.message', payload: Buffer.from('x') }, stream);
        }
        // Beyond the 20 entries the gateway may read: never replayed.
        await publishEvent(raw, { userId: 'user-max-scan', eventType: 'chat.message', payload: Buffer.from('late') }, stream);
        return early;
      },
      ['max_events'],
    );
  });
});

/** `INFO` counters of the test's Redis server (`total_net_output_bytes`, ...). */
async function redisInfo(section: string): Promise<Record<string, string>> {
  const text = String(await raw.sendCommand(['INFO', section]));
  return Object.fromEntries(text.split('\r\n').filter((l) => l.includes(':') && !l.startsWith('#')).map((l) => l.split(':', 2) as [string, string]));
}

describe('resume index (issue 25): a resume costs the device’s own missed events, not the fleet’s', () => {
  const stream = newStream('index');
  const addr = gatewayPerDescribe(stream);

  it('past 30,000 other users’ entries (3× GATEWAY_PUSH_RESUME_MAX_SCAN) replays exactly the 5 missed, complete, reading a few entries', async () => {
    const device = await activeDevice('user-index', 'index');
    const { cursor, client } = await receiveThenDisconnect(stream, addr.grpc, device, 1);
    try {
      const consumed = async () => metricValue(await scrape(addr.adminHttp as string), 'gateway_stream_entries_consumed_total', { stream: 'client_events' });
      const consumedBefore = await consumed();
      const missed: string[] = [];
      let written = 0;
      for (let round = 0; round < 5; round += 1) {
        const multi = raw.multi();
        for (let i = 0; i < 6000; i += 1) {
          multi.xAdd(stream, '*', { user_id: `index-other-${i % 100}`, event_type: 'chat.message', payload_base64: Buffer.from(`o-${i}`).toString('base64') });
        }
        // An entry of this user the live parser drops as malformed: never replayed either.
        multi.xAdd(stream, '*', { user_id: 'user-index', event_type: 'Not A Type!', payload_base64: '' });
        await multi.exec();
        written += 6001;
        missed.push(await publishEvent(raw, { userId: 'user-index', eventType: 'chat.message', payload: Buffer.from(`m-${round}`) }, stream));
        written += 1;
      }
      expect(await targetedIdsAfter(raw, stream, cursor, device)).toHaveLength(10);
      await waitFor(async () => (await consumed()) >= consumedBefore + written, { timeoutMs: 30_000, message: 'the gateway consumed the 30,000 entries' });

      const before = await scrape(addr.adminHttp as string);
      const outBefore = Number((await redisInfo('stats'))['total_net_output_bytes']);
      const abort = new AbortController();
      const events = client.subscribe({ resumeAfterEventId: cursor, signal: abort.signal })[Symbol.asyncIterator]();
      const [bootstrap, ...replayed] = await take(events, 1 + missed.length);
      const outAfter = Number((await redisInfo('stats'))['total_net_output_bytes']);
      expect(bootstrap?.eventType).toBe(SERVER_TIME);
      expect(replayed.map((e) => e.eventId)).toEqual(missed);
      expect(replayed.map((e) => Buffer.from(e.payload).toString())).toEqual(['m-0', 'm-1', 'm-2', 'm-3', 'm-4']);
      // Then the live feed: nothing else (no gateway.resume_incomplete) came before it.
      const live = await publishEvent(raw, { userId: 'user-index', eventType: 'chat.message', payload: Buffer.from('live') }, stream);
      expect((await takeThrough(events, live)).map((e) => e.eventId)).toEqual([live]);
      abort.abort();
      await events.return?.(undefined);

      const metrics = await scrape(addr.adminHttp as string);
      const delta = (name: string, labels: Record<string, string> = {}) => metricValue(metrics, name, labels) - metricValue(before, name, labels);
      expect(delta('gateway_push_resumes_total')).toBe(1);
      expect(delta('gateway_push_resume_replayed_events_total')).toBe(5);
      expect(delta('gateway_push_resumes_incomplete_total')).toBe(0);
      // One page from the index (the 5 entries; caught up with the live feed, so no second page
      // and nothing after the subscriber's position), no scan: the 5 malformed entries of this
      // user are read too (the index holds them; the parser drops them).
      expect(delta('gateway_push_history_reads_total', { source: 'index' })).toBe(1);
      expect(delta('gateway_push_history_reads_total', { source: 'scan' })).toBe(0);
      expect(delta('gateway_push_history_entries_read_total', { source: 'index' })).toBe(10);
      expect(delta('gateway_push_history_entries_read_total', { source: 'scan' })).toBe(0);
      // What Redis itself sent meanwhile (every client): the 10,000 entries a scan would read
      // are about 750 KB of replies; the resume's commands, the test's INFO and the bootstrap's
      // session and replay commands are a few KB.
      expect(outAfter - outBefore).toBeLessThan(64 * 1024);
    } finally {
      client.close();
    }
  });
});

/** What a restart scenario needs of a device SDK (the gRPC and the WebSocket one). */
interface ReconnectingClient {
  subscribe(options: { autoReconnect: true; backoff: typeof TEST_BACKOFF; signal: AbortSignal }): AsyncIterable<VerifiedEvent>;
  readonly lastEventId: string;
  close(): void;
}

/**
 * A reconnecting subscriber across a restart of the gateway on the same addresses: 5 events
 * before, 5 while no gateway runs, 5 after. `connect` makes the client once the first process
 * is up, `stop` ends that process (and checks what the client saw of it). Every event arrives
 * exactly once, in order, with no resume_incomplete and two bootstraps, and the second process
 * resumed the stream from the client's cursor (5 replayed). Returns the collector and the
 * abort of the subscription for further checks.
 */
async function restartScenario<C extends ReconnectingClient>(
  label: string,
  extraPorts: Record<string, string>,
  connect: (device: Device, ports: { grpc: number; extra: Record<string, number> }) => Promise<C>,
  stop: (first: GatewayProcess, client: C) => Promise<void>,
  then?: (app: EventCollector, abort: AbortController) => Promise<void>,
): Promise<void> {
  const stream = newStream(label);
  const ports = { http: await freePort(), grpc: await freePort(), admin: await freePort() };
  const extra: Record<string, number> = {};
  for (const name of Object.keys(extraPorts)) extra[name] = await freePort();
  const fixed: Record<string, string> = {
    GATEWAY_PUBLIC_HTTP_ADDR: `127.0.0.1:${ports.http}`,
    GATEWAY_AUTHENTICATED_GRPC_ADDR: `127.0.0.1:${ports.grpc}`,
    GATEWAY_ADMIN_HTTP_ADDR: `127.0.0.1:${ports.admin}`,
  };
  for (const [name, variable] of Object.entries(extraPorts)) fixed[variable] = `127.0.0.1:${extra[name]}`;
  const user = `user-${label}`;
  const first = new GatewayProcess(envFor(stream, fixed));
  let second: GatewayProcess | undefined;
  const device = await activeDevice(user, label);
  const abort = new AbortController();
  let client: C | undefined;
  try {
    await first.started();
    client = await connect(device, { grpc: ports.grpc, extra });
    const app = new EventCollector(client.subscribe({ autoReconnect: true, backoff: TEST_BACKOFF, signal: abort.signal }));
    await waitFor(() => app.count(SERVER_TIME) === 1, { message: 'first bootstrap' });

    const published: string[] = [];
    const publish = async (payload: string) => {
      published.push(await publishEvent(raw, { userId: user, eventType: 'chat.message', payload: Buffer.from(payload) }, stream));
      await publishEvent(raw, { userId: `${label}-other`, eventType: 'chat.message', payload: Buffer.from('x') }, stream);
    };
    for (let i = 0; i < 5; i += 1) await publish(`up-${i}`);
    await waitFor(() => app.clientEventIds.length === 5, { message: 'events before the restart' });

    await stop(first, client);
    // Down: the client keeps retrying while events pile up in Redis.
    for (let i = 0; i < 5; i += 1) await publish(`down-${i}`);
    expect(app.ended).toBe(false);

    second = new GatewayProcess(envFor(stream, fixed));
    await second.started();
    await waitFor(() => app.count(SERVER_TIME) === 2, { timeoutMs: 10_000, message: 'bootstrap from the new gateway' });
    for (let i = 0; i < 5; i += 1) await publish(`after-${i}`);
    await waitFor(() => app.clientEventIds.length >= 15, { timeoutMs: 10_000, message: 'all events' });

    expect(app.clientEventIds).toEqual(published);
    expect(app.count(INCOMPLETE)).toBe(0);
    expect(app.count(SERVER_TIME)).toBe(2);
    expect(app.error).toBeUndefined();
    expect(client.lastEventId).toBe(published.at(-1));
    // The new process resumed this stream from the client's cursor.
    const metrics = await scrape(`127.0.0.1:${ports.admin}`);
    expect(metricValue(metrics, 'gateway_push_resumes_total')).toBe(1);
    expect(metricValue(metrics, 'gateway_push_resume_replayed_events_total')).toBe(5);
    await then?.(app, abort);
  } finally {
    abort.abort();
    client?.close();
    await first.stop();
    await second?.stop();
  }
}

describe('client auto-reconnect across a gateway restart', () => {
  it('sees every event exactly once, in order, with no resume_incomplete', async () => {
    await restartScenario(
      'restart',
      {},
      (device, { grpc }) => Promise.resolve(fastReconnectClient(device, `127.0.0.1:${grpc}`, signer.publicKeyRaw)),
      async (first) => {
        first.signal('SIGTERM');
        expect((await first.exited).code).toBe(0);
      },
    );
  });

  it('still ends with the status for anything other than UNAVAILABLE (revoked)', async () => {
    const stream = newStream('revoked');
    const gateway = new GatewayProcess(envFor(stream));
    const device = await activeDevice('user-revoked-reconnect', 'revoked');
    try {
      const addr = await gateway.started();
      const client = fastReconnectClient(device, addr.grpc, signer.publicKeyRaw);
      const app = new EventCollector(client.subscribe({ autoReconnect: true, backoff: TEST_BACKOFF }));
      await waitFor(() => app.count(SERVER_TIME) === 1);
      await writeSession(raw, device, 'revoked');
      await app.finished;
      expect(app.error).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
      expect(app.count(SERVER_TIME)).toBe(1);
      client.close();
    } finally {
      await gateway.stop();
    }
  });
});

describe('client-web auto-reconnect across a gateway restart (WebSocket)', () => {
  // SIGTERM: the stream ends `14` `gateway is shutting down`, then the connection closes 1001.
  // SIGKILL: the connection drops with no status and no close frame (the client sees 1006).
  it.each(['SIGTERM', 'SIGKILL'] as const)('after %s, a new process on the same address: every event exactly once, in order, with no resume_incomplete', async (signal) => {
    await restartScenario(
      `ws-restart-${signal}`,
      { websocket: 'GATEWAY_WEBSOCKET_ADDR' },
      (device, { extra }) => webClientFor(device, `127.0.0.1:${extra['websocket']}`, signer.publicKeyRaw),
      async (first, client) => {
        const lost = client.closed;
        first.signal(signal);
        const exit = await first.exited;
        expect(signal === 'SIGTERM' ? exit.code : exit.signal).toBe(signal === 'SIGTERM' ? 0 : 'SIGKILL');
        expect((await lost).code).toBe(signal === 'SIGTERM' ? 1001 : 1006);
      },
      async (app, abort) => {
        // The app's own stop ends the iteration without an error.
        abort.abort();
        await app.finished;
        expect(app.error).toBeUndefined();
      },
    );
  });

  it('a revoked session ends the iteration with the revoked status, and nothing reconnects', async () => {
    const stream = newStream('ws-revoked');
    const gateway = new GatewayProcess(envFor(stream, { GATEWAY_WEBSOCKET_ADDR: '127.0.0.1:0' }));
    const device = await activeDevice('user-ws-revoked', 'ws-revoked');
    try {
      const addr = await gateway.started();
      const client = await webClientFor(device, addr.websocket as string, signer.publicKeyRaw);
      const app = new EventCollector(client.subscribe({ autoReconnect: true, backoff: TEST_BACKOFF }));
      await waitFor(() => app.count(SERVER_TIME) === 1);
      await writeSession(raw, device, 'revoked');
      await app.finished;
      expect(app.error).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
      expect(app.count(SERVER_TIME)).toBe(1);
      // No second subscribe reached the gateway: one SubscribeEvents call, ended revoked.
      const metrics = await scrape(addr.adminHttp as string);
      expect(metricValue(metrics, 'gateway_websocket_requests_total', { method: 'SubscribeEvents' })).toBe(1);
      expect(metricValue(metrics, 'gateway_websocket_requests_total', { method: 'SubscribeEvents', code: 'FAILED_PRECONDITION' })).toBe(1);
      client.close();
    } finally {
      await gateway.stop();
    }
  });
});

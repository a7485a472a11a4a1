import { generateKeyPairSync } from 'node:crypto';
import { ClientEventsHandler, Ed25519ResponseSigner, PushHub, eventBytes, type GatewayEvent, type PushSink } from '@edge-gateway/core';
import { startRedisCluster, waitFor, type RedisClusterHandle } from '@edge-gateway/test-utils';
import { verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ROUTED_PARTITIONS,
  RedisEventHistory,
  RedisRoutedFeed,
  RedisRoutedPublisher,
  connectAndPing,
  createRedisClusterClient,
  keySlot,
  partitionSlot,
  partitionTag,
  routedUserKeys,
  userPartition,
  type RedisClusterClient,
} from '../src/index.js';
import { MetricsHarness, unique } from './helpers.js';

class Sink implements PushSink {
  readonly events: GatewayEvent[] = [];
  write(event: GatewayEvent): boolean {
    this.events.push(event);
    return true;
  }
  end(): void {}
  get types(): string[] {
    return this.events.map((e) => e.eventType);
  }
}

const keyPrefix = 'rt:';
const signerKey = generateKeyPairSync('ed25519');
const signer = new Ed25519ResponseSigner(signerKey.privateKey);
let cluster: RedisClusterHandle;
let client: RedisClusterClient;
let publisher: RedisRoutedPublisher;
let hub: PushHub;
let feed: RedisRoutedFeed;

/** Users whose partitions are served by each of the three masters. */
async function usersOnEveryMaster(perMaster: number): Promise<string[]> {
  const byMaster = new Map<number, string[]>();
  for (let i = 0; byMaster.size < 3 || [...byMaster.values()].some((l) => l.length < perMaster); i++) {
    const user = unique(`u${i}`);
    const port = (await cluster.masterOf(keySlot(routedUserKeys(keyPrefix, user).channel))).port;
    const list = byMaster.get(port) ?? [];
    if (list.length < perMaster) list.push(user);
    byMaster.set(port, list);
  }
  return [...byMaster.values()].flat();
}

function open(userId: string, deviceSessionId: string): { sink: Sink; ready: Promise<void>; cancel: () => void } {
  const sink = new Sink();
  const stream = hub.register({ userId, deviceSessionId, sink });
  return {
    sink,
    ready: stream.following.then(() => stream.start([])),
    cancel: () => stream.cancel(),
  };
}

beforeAll(async () => {
  cluster = await startRedisCluster();
  client = createRedisClusterClient({
    nodes: [{ host: cluster.host, port: cluster.nodes[1]!.port }],
    password: cluster.password,
    commandTimeoutMs: 2000,
  });
  await connectAndPing(client, 5000);
  publisher = new RedisRoutedPublisher(client, { keyPrefix, historyMaxLen: 50 });
  await publisher.loadFunction();
  feed = new RedisRoutedFeed({
    client,
    keyPrefix,
    maxMessageBytes: 64 * 1024,
    // The handler needs the hub, the hub the feed: the feed reaches the handler late.
    delivery: { handleBatch: (e) => handler.handleBatch(e), discontinuity: (u) => handler.discontinuity(u) },
  });
  hub = new PushHub({ bufferSize: 1000, feed });
  const handler = new ClientEventsHandler({ hub, signer });
  feed.start();
});

afterAll(async () => {
  feed?.stop();
  client?.destroy();
  await cluster?.stop();
});

describe('routed partitions (SPEC §9.1)', () => {
  it('gives each of the 128 partitions a tag in its own band of 128 slots', () => {
    const slots = Array.from({ length: ROUTED_PARTITIONS }, (_, p) => partitionSlot(p));
    slots.forEach((slot, p) => expect(Math.floor(slot / 128)).toBe(p));
    expect(partitionTag(0)).toMatch(/^e0\.\d+$/);
    expect(() => partitionTag(128)).toThrow(RangeError);
  });

  it('spreads the partitions evenly over the masters (within one partition of a third each)', async () => {
    const perMaster = new Map<number, number>();
    for (let p = 0; p < ROUTED_PARTITIONS; p++) {
      const port = (await cluster.masterOf(partitionSlot(p))).port;
      perMaster.set(port, (perMaster.get(port) ?? 0) + 1);
    }
    expect(perMaster.size).toBe(3);
    for (const count of perMaster.values()) expect(Math.abs(count - ROUTED_PARTITIONS / 3)).toBeLessThanOrEqual(1);
  });

  it('keeps every key of a user in its partition slot, whatever braces the user id holds', () => {
    for (const user of ['alice', 'u{1}', '{x}', 'ü-ser']) {
      const keys = routedUserKeys(keyPrefix, user);
      expect(keys.partition).toBe(userPartition(user));
      const slot = partitionSlot(keys.partition);
      expect([keySlot(keys.history), keySlot(keys.meta), keySlot(keys.channel)]).toEqual([slot, slot, slot]);
    }
  });
});

describe('routed publish and feed (SPEC §9.2, §9.3)', () => {
  it('delivers each event to the right user and session only, across partitions on all masters', async () => {
    const users = await usersOnEveryMaster(2);
    const streams = users.map((u) => ({ user: u, a: open(u, `${u}-a`), b: open(u, `${u}-b`) }));
    await Promise.all(streams.flatMap((s) => [s.a.ready, s.b.ready]));
    for (const s of streams) {
      await publisher.publish({ userId: s.user, eventType: 'chat.all', payload: Buffer.from(`all ${s.user}`) });
      await publisher.publish({ userId: s.user, deviceSessionId: `${s.user}-b`, eventType: 'chat.only_b', payload: Buffer.from('b') });
    }
    await waitFor(() => streams.every((s) => s.a.sink.events.length === 1 && s.b.sink.events.length === 2), { message: 'every event delivered' });
    for (const s of streams) {
      expect(s.a.sink.types).toEqual(['chat.all']);
      expect(s.b.sink.types).toEqual(['chat.all', 'chat.only_b']);
      for (const e of [...s.a.sink.events, ...s.b.sink.events]) {
        expect(e.userId).toBe(s.user);
        expect(verify(null, eventBytes(e), signerKey.publicKey, e.signature)).toBe(true);
      }
      expect(Buffer.from(s.a.sink.events[0]!.payload).toString()).toBe(`all ${s.user}`);
    }
    // One sharded PUB/SUB connection per master, whatever the number of users.
    for (const master of (await cluster.topology()).filter((n) => n.role === 'master')) {
      const list = String(await cluster.command(master.port, ['CLIENT', 'LIST']));
      const subscribers = list.split('\n').filter((line) => /\bssub=[1-9]/.test(line));
      expect(subscribers).toHaveLength(1);
    }
    for (const s of streams) {
      s.a.cancel();
      s.b.cancel();
    }
  });

  it('unsubscribes after the last local stream of a user closed', async () => {
    const [user] = await usersOnEveryMaster(1);
    const { channel } = routedUserKeys(keyPrefix, user!);
    const master = (await cluster.masterOf(keySlot(channel))).port;
    const numsub = async () => Number(((await cluster.command(master, ['PUBSUB', 'SHARDNUMSUB', channel])) as unknown[])[1]);
    const first = open(user!, 's1');
    const second = open(user!, 's2');
    await Promise.all([first.ready, second.ready]);
    expect(await numsub()).toBe(1);
    first.cancel();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await numsub()).toBe(1);
    second.cancel();
    await waitFor(async () => (await numsub()) === 0, { message: 'channel unsubscribed' });
    expect(feed.size).toBe(0);
  });

  it('fills a gap in offsets from the user history, in order', async () => {
    const [user] = await usersOnEveryMaster(1);
    const s = open(user!, 's1');
    await s.ready;
    await publisher.publish({ userId: user!, eventType: 'e.one', payload: Buffer.from('1') });
    // Two events whose channel message is lost: history and offset advance, nothing is published.
    const keys = routedUserKeys(keyPrefix, user!);
    for (const n of ['2', '3']) {
      const offset = Number(await client.command(['HINCRBY', keys.meta, 'offset', '1']));
      const epoch = String(await client.command(['HGET', keys.meta, 'epoch']));
      await client.command(['XADD', keys.history, '*', 'user_id', user!, 'device_session_id', '', 'event_type', `e.lost${n}`, 'payload_base64', '', 'offset', String(offset), 'epoch', epoch]);
    }
    await publisher.publish({ userId: user!, eventType: 'e.four', payload: Buffer.from('4') });
    // A history read that fails (2 s command timeout on a loaded host) is retried 200 ms and 2 s
    // after (resyncDelaysMs): allow for one failed read and its retries.
    await waitFor(() => s.sink.events.length === 4, { message: 'gap filled', timeoutMs: 15_000 });
    expect(s.sink.types).toEqual(['e.one', 'e.lost2', 'e.lost3', 'e.four']);
    s.cancel();
  });

  it('a new epoch (history reset) ends continuity with gateway.resume_incomplete, then delivers the new events', async () => {
    const [user] = await usersOnEveryMaster(1);
    const s = open(user!, 's1');
    await s.ready;
    const first = await publisher.publish({ userId: user!, eventType: 'e.before', payload: Buffer.from('') });
    const keys = routedUserKeys(keyPrefix, user!);
    await client.command(['DEL', keys.meta]);
    const second = await publisher.publish({ userId: user!, eventType: 'e.after', payload: Buffer.from('') });
    expect(second.epoch).not.toBe(first.epoch);
    expect(second.offset).toBe(1);
    await waitFor(() => s.sink.events.length === 3, { message: 'three events' });
    expect(s.sink.types).toEqual(['e.before', 'gateway.resume_incomplete', 'e.after']);
    expect(s.sink.events[1]).toMatchObject({ eventId: '', userId: user, deviceSessionId: 's1' });
    s.cancel();
  });

  it('after its PUB/SUB connection is killed, re-syncs the user from history: the event published meanwhile arrives, in order, once', async () => {
    const [user] = await usersOnEveryMaster(1);
    const s = open(user!, 's1');
    await s.ready;
    const first = await publisher.publish({ userId: user!, eventType: 'e.before', payload: Buffer.from('') });
    await waitFor(() => s.sink.events.length === 1, { message: 'first event' });
    const master = (await cluster.masterOf(keySlot(routedUserKeys(keyPrefix, user!).channel))).port;
    // Drop the sharded PUB/SUB connection (the one with subscriptions); publish while it is gone.
    const list = String(await cluster.command(master, ['CLIENT', 'LIST']));
    const id = /^id=(\d+) .*\bssub=[1-9]/m.exec(list)?.[1];
    expect(id).toBeDefined();
    // Another process's publisher, connected beforehand: its commands do not wait for the feed's client to recover.
    const other = createRedisClusterClient({ nodes: [{ host: cluster.host, port: cluster.nodes[2]!.port }], password: cluster.password });
    await connectAndPing(other, 5000);
    const elsewhere = new RedisRoutedPublisher(other, { keyPrefix, historyMaxLen: 50 });
    await elsewhere.publish({ userId: 'warm-up', eventType: 'e.warm', payload: Buffer.from('') });
    const during = [];
    try {
      await cluster.command(master, ['CLIENT', 'KILL', 'ID', id!]);
      // One event and nothing after it: no later message reveals a gap, only the re-sync finds it.
      during.push((await elsewhere.publish({ userId: user!, eventType: 'e.during', payload: Buffer.from('') })).id);
    } finally {
      await other.close();
    }
    await waitFor(() => s.sink.events.length === 2, { timeoutMs: 10_000, message: 'the event published while disconnected' });
    expect(s.sink.events.map((e) => e.eventId)).toEqual([first.id, ...during]);
    const after = await publisher.publish({ userId: user!, eventType: 'e.after', payload: Buffer.from('') });
    await waitFor(() => s.sink.events.length === 3, { timeoutMs: 10_000, message: 'live again' });
    expect(s.sink.events.map((e) => e.eventId)).toEqual([first.id, ...during, after.id]);
    s.cancel();
  });

  it('refuses an event the gateway would drop, before sending anything', async () => {
    await expect(publisher.publish({ userId: 'u', eventType: 'gateway.fake', payload: Buffer.from('') })).rejects.toThrow(/reserved gateway\. prefix/);
    await expect(publisher.publish({ userId: '', eventType: 'a.b', payload: Buffer.from('') })).rejects.toThrow(/user_id is missing/);
  });

  it('keeps a bounded history per user that resume reads (RedisEventHistory per user)', async () => {
    const user = unique('resumer');
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push((await publisher.publish({ userId: user, eventType: 'e.n', payload: Buffer.from(String(i)) })).id);
    const history = new RedisEventHistory(client, { streamKey: (u) => routedUserKeys(keyPrefix, u).history });
    const length = Number(await client.command(['XLEN', routedUserKeys(keyPrefix, user).history]));
    expect(length).toBe(50);
    const page = await history.readAfter(ids[57]!, 10, user);
    expect(page.entries.map((e) => e.id)).toEqual(ids.slice(58));
    expect(page.truncated).toBe(false);
    expect((await history.readAfter(ids[0]!, 10, user)).truncated).toBe(true);
    expect((await history.readAfter('0-0', 10, unique('nobody'))).entries).toEqual([]);
  });
});

describe('what a gateway counts of its routed messages (SPEC §9.5)', () => {
  it('counts every event of a user it holds a stream of, once, also one addressed to a session it does not hold; nothing of a user it holds no stream of', async () => {
    // A second gateway process on the same cluster, with its own hub and metrics.
    const harness = new MetricsHarness();
    // The handler needs the hub, the hub the feed: the feed reaches the handler late.
    const ownFeed: RedisRoutedFeed = new RedisRoutedFeed({
      client,
      keyPrefix,
      maxMessageBytes: 64 * 1024,
      metrics: harness.metrics,
      delivery: { handleBatch: (e): Promise<void> => ownHandler.handleBatch(e), discontinuity: (u): number => ownHandler.discontinuity(u) },
    });
    const ownHub: PushHub = new PushHub({ bufferSize: 100, feed: ownFeed });
    const ownHandler: ClientEventsHandler = new ClientEventsHandler({ hub: ownHub, signer, metrics: harness.metrics });
    const consumed = () => harness.value('gateway_stream_entries_consumed_total', { stream: 'client_events' });
    const user = unique('counted');
    const stranger = unique('not-held');
    const sink = new Sink();
    const stream = ownHub.register({ userId: user, deviceSessionId: `${user}-a`, sink });
    try {
      await stream.following.then(() => stream.start([]));
      expect(await consumed()).toBe(0);
      await publisher.publish({ userId: stranger, eventType: 'chat.elsewhere', payload: Buffer.from('s') });
      const toOther = await publisher.publish({ userId: user, deviceSessionId: `${user}-b`, eventType: 'chat.only_b', payload: Buffer.from('b') });
      const toMine = await publisher.publish({ userId: user, deviceSessionId: `${user}-a`, eventType: 'chat.only_a', payload: Buffer.from('a') });
      const toAll = await publisher.publish({ userId: user, eventType: 'chat.all', payload: Buffer.from('all') });
      // The user's events are handled in order: once the last is delivered, the others were handled.
      await waitFor(() => sink.events.length === 2, { message: 'the events of the held session' });
      expect(sink.events.map((e) => e.eventId)).toEqual([toMine.id, toAll.id]);
      // The one for session b (held nowhere here) was received, parsed and dropped: counted;
      // the other user's was never received: not counted.
      expect(await consumed()).toBe(3);
      expect(toOther.id).not.toBe(toMine.id);
      expect(await harness.value('gateway_stream_entries_malformed_total', { stream: 'client_events' })).toBe(0);
    } finally {
      stream.cancel();
      ownFeed.stop();
    }
  });
});

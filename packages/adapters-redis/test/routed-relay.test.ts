import { startRedisCluster, waitFor, type RedisClusterHandle } from '@edge-gateway/test-utils';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisRoutedPublisher,
  RedisRoutedRelay,
  RoutedEventError,
  connectAndPing,
  createRedisClusterClient,
  keySlot,
  routedUserKeys,
  type RedisClusterClient,
  type RedisRoutedRelayOptions,
} from '../src/index.js';
import { MetricsHarness, recordingLogger, unique } from './helpers.js';

/**
 * The migration relay never drops an entry it could not publish (SPEC §9.5, issue 21): it holds
 * it and retries with backoff while the partition's master refuses writes, publishes it (in
 * order) once the master takes writes again, keeps the entries it holds from being claimed while
 * it lives, and claims the entries a dead consumer left pending. Only an entry older than the
 * history TTL is given up, and one that can never be published (refused) is dropped; both are
 * counted with their reason.
 */

const keyPrefix = 'rl:';
let cluster: RedisClusterHandle;
let client: RedisClusterClient;
let publisher: RedisRoutedPublisher;
const relays: RedisRoutedRelay[] = [];
const refusing = new Set<number>();

const payloadOf = (text: string) => Buffer.from(text).toString('base64');

async function masterPortOf(key: string): Promise<number> {
  return (await cluster.masterOf(keySlot(key))).port;
}

/** A user whose partition is served by the master on `port` (or, with `not`, by any other master). */
async function userOn(port: number, not = false): Promise<string> {
  for (let i = 0; ; i++) {
    const user = unique(`u${i}`);
    const on = (await masterPortOf(routedUserKeys(keyPrefix, user).channel)) === port;
    if (on !== not) return user;
  }
}

async function refuseWrites(port: number): Promise<void> {
  refusing.add(port);
  await cluster.command(port, ['CONFIG', 'SET', 'maxmemory', '1']);
}

async function acceptWrites(port: number): Promise<void> {
  await cluster.command(port, ['CONFIG', 'SET', 'maxmemory', '0']);
  refusing.delete(port);
}

/** `[event_type, payload]` of every history entry of `user`, in order. */
async function history(user: string): Promise<string[]> {
  const reply = (await client.command(['XRANGE', routedUserKeys(keyPrefix, user).history, '-', '+'])) as unknown[];
  return reply.map((entry) => {
    const flat = (entry as unknown[])[1] as string[];
    const fields = Object.fromEntries(flat.flatMap((_, i) => (i % 2 === 0 ? [[flat[i], flat[i + 1]]] : [])));
    return `${fields['event_type']}:${Buffer.from(fields['payload_base64'] ?? '', 'base64').toString()}`;
  });
}

/** Pending entries of the group (all consumers). */
async function pending(stream: string, group: string): Promise<number> {
  return Number(((await client.command(['XPENDING', stream, group])) as unknown[])[0]);
}

function startRelay(stream: string, options: Partial<RedisRoutedRelayOptions> & { consumer: string }) {
  const harness = new MetricsHarness();
  const logger = recordingLogger();
  const relay = new RedisRoutedRelay({
    client,
    streamKey: stream,
    group: `${keyPrefix}routed-relay`,
    publisher,
    historyTtlMs: 60_000,
    blockMs: 500,
    retry: { minDelayMs: 100, maxDelayMs: 1000 },
    metrics: harness.metrics,
    logger,
    ...options,
  });
  relays.push(relay);
  const value = (name: string, labels: Record<string, string> = {}) => harness.value(name, labels);
  return { relay, harness, logger, value, started: relay.start() };
}

async function xadd(stream: string, user: string, type: string, text: string): Promise<string> {
  return String(await client.command(['XADD', stream, '*', 'user_id', user, 'event_type', type, 'payload_base64', payloadOf(text)]));
}

beforeAll(async () => {
  cluster = await startRedisCluster();
  client = createRedisClusterClient({ nodes: [{ host: cluster.host, port: cluster.nodes[0]!.port }], password: cluster.password, commandTimeoutMs: 400 });
  await connectAndPing(client, 5000);
  publisher = new RedisRoutedPublisher(client, { keyPrefix });
  await publisher.loadFunction();
});

afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.stop()));
  for (const port of [...refusing]) await acceptWrites(port);
});

afterAll(async () => {
  client?.destroy();
  await cluster?.stop();
});

describe('routed relay (SPEC §9.5)', () => {
  it('holds entries while the partition master refuses writes (maxmemory 1), retries with backoff, and publishes them in order within 20 s of recovery; nothing dropped, nothing claimed', async () => {
    const stream = unique('legacy');
    const streamMaster = await masterPortOf(stream);
    const blockedMaster = (await cluster.topology()).find((n) => n.role === 'master' && n.port !== streamMaster)!.port;
    const [blocked, other] = [await userOn(blockedMaster), await userOn(blockedMaster, true)];
    const a = startRelay(stream, { consumer: 'relay-a', claimIdleMs: 1000 });
    await a.started;
    await refuseWrites(blockedMaster);
    for (let i = 1; i <= 3; i++) await xadd(stream, blocked, 'chat.held', String(i));
    await client.command(['XADD', stream, '*', 'user_id', blocked, 'event_type', 'gateway.forged', 'payload_base64', '']);
    await xadd(stream, other, 'chat.free', 'x');
    // Another partition is not held up by the refusing one.
    await waitFor(async () => (await history(other)).length === 1, { message: "the other partition's entry published" });
    await waitFor(async () => (await a.value('gateway_routed_relay_retries_total')) >= 3, { timeoutMs: 10_000, message: 'retries while the master refuses writes' });
    expect(a.relay.held).toBe(3);
    expect(await pending(stream, `${keyPrefix}routed-relay`)).toBe(3);
    expect(await history(blocked)).toEqual([]);
    const warned = a.logger.lines.filter((l) => l.message === 'routed relay publish failed; entry kept for retry');
    expect(warned).toHaveLength(1);
    expect(String(warned[0]!.fields['error'])).toMatch(/OOM/);
    // A second process of the group, claiming what stays idle for 1 s: the holder keeps its
    // entries fresh, so nothing is claimed while it lives. A window with nothing to await: the
    // absence of a claim over several claim periods is what is tested.
    const b = startRelay(stream, { consumer: 'relay-b', claimIdleMs: 1000 });
    await b.started;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await b.value('gateway_routed_relay_claimed_total')).toBe(0);
    expect(a.relay.held).toBe(3);

    await acceptWrites(blockedMaster);
    const recoveredAt = Date.now();
    await waitFor(async () => (await history(blocked)).length === 3, { timeoutMs: 20_000, message: 'held entries published after recovery' });
    const deliveredWithinMs = Date.now() - recoveredAt;
    expect(deliveredWithinMs).toBeLessThan(20_000);
    expect(await history(blocked)).toEqual(['chat.held:1', 'chat.held:2', 'chat.held:3']);
    await waitFor(async () => (await pending(stream, `${keyPrefix}routed-relay`)) === 0, { message: 'every entry acknowledged' });
    for (const r of [a, b]) {
      for (const reason of ['expired', 'refused', 'deleted']) expect(await r.value('gateway_routed_relay_dropped_total', { reason })).toBe(0);
      expect(await r.value('gateway_routed_relay_held')).toBe(0);
    }
    expect((await a.value('gateway_stream_entries_malformed_total', { stream: 'client_events' })) + (await b.value('gateway_stream_entries_malformed_total', { stream: 'client_events' }))).toBe(1);
    expect(a.logger.lines.filter((l) => l.message === 'routed relay publishing again')).toHaveLength(1);
  });

  it("claims the entries a dead consumer left pending once they are idle for the claim time, and publishes them", async () => {
    const stream = unique('legacy');
    const group = `${keyPrefix}routed-relay`;
    const user = unique('orphan');
    await client.command(['XGROUP', 'CREATE', stream, group, '$', 'MKSTREAM']);
    for (let i = 1; i <= 3; i++) await xadd(stream, user, 'chat.orphan', String(i));
    // A process read them and died before publishing.
    const readAt = Date.now();
    await client.command(['XREADGROUP', 'GROUP', group, 'dead-process', 'COUNT', '10', 'STREAMS', stream, '>']);
    const live = startRelay(stream, { consumer: 'live-process', claimIdleMs: 1500 });
    await live.started;
    await waitFor(async () => (await history(user)).length === 3, { timeoutMs: 15_000, message: 'orphaned entries claimed and published' });
    expect(Date.now() - readAt).toBeGreaterThanOrEqual(1500);
    expect(await history(user)).toEqual(['chat.orphan:1', 'chat.orphan:2', 'chat.orphan:3']);
    expect(await live.value('gateway_routed_relay_claimed_total')).toBe(3);
    expect(live.logger.lines.filter((l) => l.message === 'routed relay claimed entries another consumer left pending').map((l) => l.fields['entries'])).toEqual([3]);
    await waitFor(async () => (await pending(stream, group)) === 0, { message: 'claimed entries acknowledged' });
  });

  it('takes back its own pending entries at once after a restart under the same consumer name', async () => {
    const stream = unique('legacy');
    const streamMaster = await masterPortOf(stream);
    const blockedMaster = (await cluster.topology()).find((n) => n.role === 'master' && n.port !== streamMaster)!.port;
    const user = await userOn(blockedMaster);
    const first = startRelay(stream, { consumer: 'pod-0:1', claimIdleMs: 60_000 });
    await first.started;
    await refuseWrites(blockedMaster);
    await xadd(stream, user, 'chat.again', '1');
    await waitFor(() => first.relay.held === 1, { message: 'held by the first process' });
    await first.relay.stop();
    const second = startRelay(stream, { consumer: 'pod-0:1', claimIdleMs: 60_000 });
    await second.started;
    await waitFor(() => second.relay.held === 1, { message: 'taken back at start, long before the claim time' });
    await acceptWrites(blockedMaster);
    await waitFor(async () => (await history(user)).length === 1, { timeoutMs: 20_000, message: 'published after the restart' });
    expect(second.logger.lines.some((l) => l.message === 'routed relay took back its own pending entries')).toBe(true);
  });

  it('gives up only an entry older than the history TTL, counted with reason expired; drops an entry that can never be published as refused', async () => {
    const stream = unique('legacy');
    const streamMaster = await masterPortOf(stream);
    const blockedMaster = (await cluster.topology()).find((n) => n.role === 'master' && n.port !== streamMaster)!.port;
    const [old, broken, fine] = [await userOn(blockedMaster), await userOn(blockedMaster, true), await userOn(blockedMaster, true)];
    const relay = startRelay(stream, { consumer: 'relay-ttl', historyTtlMs: 1500 });
    await relay.started;
    // A key of another type where the user's meta hash belongs: WRONGTYPE, never publishable.
    await client.command(['SET', routedUserKeys(keyPrefix, broken).meta, 'not a hash']);
    await refuseWrites(blockedMaster);
    await xadd(stream, old, 'chat.stale', '1');
    await xadd(stream, broken, 'chat.broken', '1');
    await xadd(stream, fine, 'chat.fine', '1');
    await waitFor(async () => (await relay.value('gateway_routed_relay_dropped_total', { reason: 'expired' })) === 1, { timeoutMs: 15_000, message: 'the held entry given up after the TTL' });
    expect(await relay.value('gateway_routed_relay_dropped_total', { reason: 'refused' })).toBe(1);
    expect(await history(fine)).toEqual(['chat.fine:1']);
    await acceptWrites(blockedMaster);
    await waitFor(async () => (await pending(stream, `${keyPrefix}routed-relay`)) === 0, { message: 'every entry done' });
    expect(await history(old)).toEqual([]);
    expect(relay.logger.lines.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([
      'routed relay entry refused; dropped',
      'routed relay gave an entry up: older than the history TTL',
    ]);
  });

  it('drops an entry the publisher refuses (RoutedEventError) and relays the next one', async () => {
    const stream = unique('legacy');
    const user = unique('refused');
    const relay = startRelay(stream, {
      consumer: 'relay-refusal',
      publisher: {
        publish: (event) => (event.eventType === 'chat.refused' ? Promise.reject(new RoutedEventError('refused by the publish function (ERR invalid keys: …)')) : publisher.publish(event)),
      },
    });
    await relay.started;
    await xadd(stream, user, 'chat.refused', '1');
    await xadd(stream, user, 'chat.after', '2');
    await waitFor(async () => (await history(user)).length === 1, { message: 'the next entry relayed' });
    expect(await history(user)).toEqual(['chat.after:2']);
    expect(await relay.value('gateway_routed_relay_dropped_total', { reason: 'refused' })).toBe(1);
    expect(await relay.value('gateway_routed_relay_retries_total')).toBe(0);
  });
});

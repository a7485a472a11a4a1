import { generateKeyPairSync } from 'node:crypto';
import { ClientEventsHandler, Ed25519ResponseSigner, PushHub, type GatewayEvent, type PushSink } from '@edge-gateway/core';
import { cutReplica, killMasterAndPromote, startRedisCluster, waitFor, waitForReplication, type RedisClusterHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisEventHistory,
  RedisRoutedFeed,
  RedisRoutedPublisher,
  connectAndPing,
  createRedisClusterClient,
  keySlot,
  routedUserKeys,
  type RedisClusterClient,
} from '../src/index.js';
import { MetricsHarness, recordingLogger, unique } from './helpers.js';

/**
 * Routed fan-out across a failover that loses writes (SPEC §9.3, issue 21): events the old
 * partition master acknowledged and published live, then lost because its replica never got
 * them, are told to every stream that was sent them (`gateway.resume_incomplete`), found by the
 * re-sync even when nothing is published afterwards; a user of the same master whose events were
 * all replicated is told nothing, and the new master's events follow for both.
 */

class Sink implements PushSink {
  readonly events: GatewayEvent[] = [];
  write(event: GatewayEvent): boolean {
    this.events.push(event);
    return true;
  }
  end(): void {}
  /** Event ids, with `!` for a `gateway.resume_incomplete`. */
  get trail(): string[] {
    return this.events.map((e) => (e.eventType === 'gateway.resume_incomplete' ? '!' : e.eventId));
  }
}

const keyPrefix = 'rf:';
const signer = new Ed25519ResponseSigner(generateKeyPairSync('ed25519').privateKey);
let cluster: RedisClusterHandle;
let client: RedisClusterClient;
let publisher: RedisRoutedPublisher;
let hub: PushHub;
let feed: RedisRoutedFeed;
const harness = new MetricsHarness();
const logger = recordingLogger();

function open(userId: string): { sink: Sink; ready: Promise<void> } {
  const sink = new Sink();
  const stream = hub.register({ userId, deviceSessionId: `${userId}-s`, sink });
  return { sink, ready: stream.following.then(() => stream.start([])) };
}

beforeAll(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 1 });
  client = createRedisClusterClient({ nodes: cluster.nodes.map((n) => ({ host: cluster.host, port: n.port })), password: cluster.password, commandTimeoutMs: 1000 });
  await connectAndPing(client, 5000);
  publisher = new RedisRoutedPublisher(client, { keyPrefix, historyMaxLen: 100 });
  await publisher.loadFunction();
  feed = new RedisRoutedFeed({
    client,
    keyPrefix,
    maxMessageBytes: 64 * 1024,
    delivery: { handleBatch: (e) => handler.handleBatch(e), discontinuity: (u) => handler.discontinuity(u) },
    metrics: harness.metrics,
    logger,
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

describe('routed fan-out: a master SIGKILLed after replica lag (SPEC §9.3)', () => {
  it('tells the streams that were sent lost events, tells the others nothing, and goes on with the new master', async () => {
    const lossy = unique('lossy');
    const { channel } = routedUserKeys(keyPrefix, lossy);
    const slot = keySlot(channel);
    const master = await cluster.masterOf(slot);
    const replica = (await cluster.topology()).find((n) => n.role === 'replica' && n.masterId === master.id);
    if (replica === undefined) throw new Error(`no replica of ${master.address}`);
    // A user on the same master whose events all reach the replica.
    let safe = '';
    for (let i = 0; safe === ''; i++) {
      const candidate = unique(`safe${i}`);
      if ((await cluster.masterOf(keySlot(routedUserKeys(keyPrefix, candidate).channel))).port === master.port) safe = candidate;
    }
    const [a, b] = [open(lossy), open(safe)];
    await Promise.all([a.ready, b.ready]);

    const kept = [];
    for (let i = 0; i < 3; i++) kept.push((await publisher.publish({ userId: lossy, eventType: 'e.kept', payload: Buffer.from(String(i)) })).id);
    const safeKept = (await publisher.publish({ userId: safe, eventType: 'e.kept', payload: Buffer.alloc(0) })).id;
    await waitForReplication(cluster, master.port, replica.port);
    await cutReplica(cluster, master.port, replica.port);
    // Acknowledged by the master and delivered live, never replicated.
    const lost = [];
    for (let i = 0; i < 2; i++) lost.push((await publisher.publish({ userId: lossy, eventType: 'e.lost', payload: Buffer.from(String(i)) })).id);
    await waitFor(() => a.sink.events.length === 5 && b.sink.events.length === 1, { message: 'every event delivered live' });
    expect(a.sink.trail).toEqual([...kept, ...lost]);

    await killMasterAndPromote(cluster, master.port, replica.port, slot);
    // Nothing is published: the re-sync after the topology change finds the loss.
    await waitFor(() => a.sink.trail.includes('!'), { timeoutMs: 20_000, message: 'gateway.resume_incomplete after the failover' });
    expect(a.sink.trail).toEqual([...kept, ...lost, '!']);
    expect(a.sink.events[5]).toMatchObject({ eventId: '', userId: lossy, deviceSessionId: `${lossy}-s` });
    expect(await harness.value('gateway_stream_history_diverged_total', { stream: 'client_events' })).toBe(1);
    expect(await harness.value('gateway_push_loss_notices_total', { reason: 'history_diverged' })).toBe(1);
    expect(logger.lines.filter((l) => l.message === 'user history lost delivered events (failover); streams told gateway.resume_incomplete').map((l) => l.fields)).toEqual([
      expect.objectContaining({ user_id: lossy, reason: 'lost', last_delivered: lost[1], history_last_id: kept[2] }),
    ]);

    // A device that resumes after a lost event (on any process) is told as well.
    const resume = new RedisEventHistory(client, { streamKey: (u) => routedUserKeys(keyPrefix, u).history });
    expect((await resume.readAfter(lost[1]!, 10, lossy)).truncated).toBe(true);
    expect((await resume.readAfter(kept[2]!, 10, lossy)).truncated).toBe(false);

    // The new master starts an epoch that continues what it holds: both users go on, no more notices.
    const after = (await publisher.publish({ userId: lossy, eventType: 'e.after', payload: Buffer.alloc(0) })).id;
    const safeAfter = (await publisher.publish({ userId: safe, eventType: 'e.after', payload: Buffer.alloc(0) })).id;
    await waitFor(() => a.sink.events.length === 7 && b.sink.events.length === 2, { timeoutMs: 10_000, message: 'events after the failover' });
    expect(a.sink.trail).toEqual([...kept, ...lost, '!', after]);
    expect(b.sink.trail).toEqual([safeKept, safeAfter]);
    // Another re-sync changes nothing.
    await feed.resync();
    expect(a.sink.events).toHaveLength(7);
    expect(b.sink.events).toHaveLength(2);
    expect(await harness.value('gateway_stream_history_diverged_total', { stream: 'client_events' })).toBe(1);
  });
});

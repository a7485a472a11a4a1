import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Ed25519ResponseSigner, createGatewayCore, type PushHub } from '@edge-gateway/core';
import { startGrpcServer, type GrpcServerHandle } from '@edge-gateway/adapters-grpc';
import { GatewayClient, type VerifiedEvent } from '@edge-gateway/client';
import { redisCommand, startSentinelTopology, waitFor, type SentinelTopology } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisEventHistory,
  RedisReplayStore,
  RedisSessionStore,
  RedisStreamSubscriber,
  SentinelRedisTopology,
  StreamContinuity,
} from '../src/index.js';
import { MetricsHarness, recordingLogger, unique } from './helpers.js';

/**
 * No silent push loss in stream mode (SPEC §5.6, issue 21): the real pieces (Sentinel topology,
 * client-events subscriber on the replica, resume history, core, gRPC server, client package)
 * on a master, a replica and three Sentinels. Events reach open streams; the replica is cut
 * off; more events are delivered live from the old master; the master is killed and the
 * replica promoted. Every stream that was sent a lost event, or whose user had one, is told.
 */

let topo: SentinelTopology;
let gateway: SentinelRedisTopology;
let grpc: GrpcServerHandle;
let subscriber: RedisStreamSubscriber;
let hub: PushHub;
const harness = new MetricsHarness();
const logs = recordingLogger();
const streamKey = unique('client-events');
const signer = new Ed25519ResponseSigner(generateKeyPairSync('ed25519').privateKey);
const clients: GatewayClient[] = [];
const aborts: AbortController[] = [];

beforeAll(async () => {
  topo = await startSentinelTopology();
  gateway = new SentinelRedisTopology({
    sentinels: topo.sentinels.map((s) => ({ host: s.host, port: s.port })),
    masterName: topo.masterName,
    pollIntervalMs: 500,
    master: { password: topo.password, clientName: 'gw-loss', commandTimeoutMs: 1000, reconnect: { minDelayMs: 20, maxDelayMs: 200 }, metrics: harness.metrics, logger: logs },
  });
  await gateway.connect(5000);
  const continuity = new StreamContinuity();
  const core = createGatewayCore(
    {
      sessions: new RedisSessionStore(gateway.master, { keyPrefix: 'gateway:' }),
      replay: new RedisReplayStore(gateway.master, { keyPrefix: 'gateway:' }),
      history: new RedisEventHistory(gateway.master, { streamKey, continuity, verifyWaitMs: 1000 }),
      signer,
      metrics: harness.metrics,
      logger: logs,
    },
    { sessionCacheMaxEntries: 100, sessionCacheTtlMs: 60_000, pushStreamBuffer: 256 },
  );
  hub = core.hub;
  subscriber = new RedisStreamSubscriber({
    topology: gateway,
    readFrom: 'replica',
    watchdogMs: 300,
    continuity,
    streamKey,
    handler: core.clientEvents,
    blockMs: 500,
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    metrics: harness.metrics,
    logger: logs,
  });
  await subscriber.start();
  grpc = await startGrpcServer({ address: '127.0.0.1:0', core, maxPayloadBytes: 1024 * 1024, metrics: harness.metrics });
});

afterAll(async () => {
  for (const abort of aborts) abort.abort();
  for (const client of clients) client.close();
  hub?.close();
  await grpc?.close(1000);
  await subscriber?.stop();
  await gateway?.close();
  await topo?.stop();
});

let seq = 0;
/** An active device session of `userId`, its record written to the master. */
async function device(userId: string): Promise<GatewayClient & { readonly session: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  const deviceSessionId = `loss-${process.pid}-${(seq += 1)}`;
  const fields = { device_session_id: deviceSessionId, user_id: userId, status: 'active', client_public_key: der.subarray(der.length - 32).toString('base64') };
  await gateway.master.command(['HSET', `gateway:session:${deviceSessionId}`, ...Object.entries(fields).flat()]);
  const client = new GatewayClient({ address: `127.0.0.1:${grpc.port}`, deviceSessionId, userId, privateKey: privateKey as KeyObject, gatewayPublicKeys: [signer.publicKey] });
  clients.push(client);
  return Object.assign(client, { session: deviceSessionId });
}

/** Collects a stream's events in the background. */
class Watch {
  readonly events: VerifiedEvent[] = [];
  ended: unknown;
  constructor(client: GatewayClient, resumeAfterEventId?: string) {
    const abort = new AbortController();
    aborts.push(abort);
    void (async () => {
      try {
        for await (const event of client.subscribe({ signal: abort.signal, ...(resumeAfterEventId === undefined ? {} : { resumeAfterEventId }) })) this.events.push(event);
      } catch (error) {
        this.ended = error;
      }
    })();
  }
  get types(): string[] {
    return this.events.map((e) => e.eventType);
  }
  get labels(): string[] {
    return this.events.map((e) => (e.eventType === 'loss.test' ? Buffer.from(e.payload).toString() : e.eventType));
  }
  async count(n: number, message: string): Promise<void> {
    await waitFor(() => this.events.length >= n, { timeoutMs: 20_000, message: `${message} (${this.labels.join(', ')})` });
  }
}

const base = Date.now() + 60_000;
const id = (n: number): string => `${base}-${n}`;
/** XADD a client event with an explicit id on the gateway's master; resolves with the id (the publisher's acknowledgement). */
async function publish(n: number, userId: string, label: string, deviceSessionId?: string): Promise<string> {
  const fields = ['user_id', userId, 'event_type', 'loss.test', 'payload_base64', Buffer.from(label).toString('base64')];
  if (deviceSessionId !== undefined) fields.push('device_session_id', deviceSessionId);
  return String(await gateway.master.command(['XADD', streamKey, id(n), ...fields]));
}

describe('stream mode: events lost in a failover are announced (SPEC §5.6)', () => {
  it('every stream sent a lost event, or whose user had one, gets gateway.resume_incomplete; a resume from a lost id too; the others lose nothing', async () => {
    const a = await device('u-a');
    const b1 = await device('u-b');
    const b2 = await device('u-b');
    const c = await device('u-c');
    const [wa, wb1, wb2, wc] = [new Watch(a), new Watch(b1), new Watch(b2), new Watch(c)];
    for (const w of [wa, wb1, wb2, wc]) await w.count(1, 'bootstrap');

    await publish(1, 'u-a', 'common-a');
    await publish(2, 'u-c', 'common-c');
    await wa.count(2, 'common event of a');
    await wc.count(2, 'common event of c');
    // Replicated (records and events): the promoted replica will hold them.
    expect(await gateway.master.command(['WAIT', '1', '10000'], { timeoutMs: 11_000 })).toBe(1);

    const old = await topo.masterNode();
    const replica = (await topo.replicaNodes())[0];
    if (replica === undefined) throw new Error('no replica');
    // Cut the replica off: it can no longer authenticate to the master.
    await redisCommand('127.0.0.1', replica.port, topo.password, ['CONFIG', 'SET', 'masterauth', 'wrong-password']);
    await redisCommand('127.0.0.1', replica.port, topo.password, ['CLIENT', 'KILL', 'TYPE', 'master']);
    // Acknowledged by the old master only. The reader on the replica stalls; its watchdog moves
    // it to the master, which delivers them live.
    await publish(3, 'u-a', 'ghost-a');
    await publish(4, 'u-b', 'ghost-b-other-session', b2.session);
    await wa.count(3, 'ghost delivered live to a');
    await wb2.count(2, 'ghost delivered live to b2');

    await old.kill();
    const promoted = await topo.waitForNewMaster(old.port);
    await waitFor(() => gateway.master.port === promoted.port, { message: 'gateway re-pointed', timeoutMs: 10_000 });
    // Streams of a (sent a lost event), b1 and b2 (their user had a lost entry) are told.
    await wa.count(4, 'notice to a');
    await wb1.count(2, 'notice to b1');
    await wb2.count(3, 'notice to b2');
    expect(await harness.value('gateway_push_loss_notices_total', { reason: 'history_diverged' })).toBe(3);
    expect(logs.lines.find((l) => l.message === 'push streams told of lost events')?.fields).toMatchObject({ lost_after: id(2), lost_up_to: id(4), sessions_told: 3 });

    // The new master reuses the lost ids (its clock is behind): the new events are delivered.
    await publish(3, 'u-a', 'new-a');
    await publish(4, 'u-c', 'new-c');
    await wa.count(5, 'new event of a');
    await wc.count(3, 'new event of c');
    expect(wa.labels).toEqual(['gateway.server_time', 'common-a', 'ghost-a', 'gateway.resume_incomplete', 'new-a']);
    expect(wb1.labels).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
    expect(wb2.labels).toEqual(['gateway.server_time', 'ghost-b-other-session', 'gateway.resume_incomplete']);
    // c had nothing in the lost range: every event it was acknowledged, and no notice.
    expect(wc.labels).toEqual(['gateway.server_time', 'common-c', 'new-c']);
    for (const w of [wa, wb1, wb2, wc]) expect(w.ended).toBeUndefined();

    // Resumes from a lost id: reused by the new master (exists by chance) and never rewritten.
    for (const [client, lost] of [[a, id(3)], [b2, id(4)]] as const) {
      const resumed = new Watch(client, lost);
      await resumed.count(2, `resume after ${lost}`);
      expect(resumed.types.slice(0, 2)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
    }
    expect(await harness.value('gateway_push_resumes_incomplete_total', { reason: 'diverged' })).toBe(2);
    // A resume from the newest shared entry is complete and replays what followed.
    const fromShared = new Watch(c, id(2));
    await fromShared.count(2, 'resume after the shared entry');
    expect(fromShared.labels).toEqual(['gateway.server_time', 'new-c']);
  }, 90_000);
});

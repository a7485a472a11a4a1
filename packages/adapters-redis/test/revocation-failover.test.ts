/**
 * A revocation survives a failover (issue 21, SPEC §5.3, §5.5, §5.6): on a master, a replica and
 * three Sentinels, a revocation the old master acknowledged but never replicated is refused
 * throughout the failover and written back to the new master by the gateways that saw it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { Ed25519ResponseSigner, MetricNames, createGatewayCore, type GatewayCore } from '@edge-gateway/core';
import { redisCommand, startSentinelTopology, waitFor, type SentinelTopology } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisReplayStore, RedisRevocationStore, RedisSessionStore, RedisStreamSubscriber, SentinelRedisTopology } from '../src/index.js';
import { flatToRecord } from '../src/redis-session-store.js';
import { MetricsHarness, recordingLogger, unique, type LogLine } from './helpers.js';

const keyPrefix = 'gateway:';
const signer = new Ed25519ResponseSigner(generateKeyPairSync('ed25519').privateKey);
let topo: SentinelTopology;

interface Gateway {
  readonly core: GatewayCore;
  readonly topology: SentinelRedisTopology;
  readonly subscriber: RedisStreamSubscriber;
  readonly harness: MetricsHarness;
  readonly lines: LogLine[];
  /** When this gateway learned of each master change (ms epoch). */
  readonly announcements: number[];
}

const gateways: Gateway[] = [];

/** A gateway's Redis side and core on the Sentinel topology, reading `stream`. */
async function startGateway(stream: string): Promise<Gateway> {
  const harness = new MetricsHarness();
  const logs = recordingLogger();
  const topology = new SentinelRedisTopology({
    sentinels: topo.sentinels.map((s) => ({ host: s.host, port: s.port })),
    masterName: topo.masterName,
    pollIntervalMs: 500,
    master: { password: topo.password, clientName: 'gw-revoke', commandTimeoutMs: 400, reconnect: { minDelayMs: 20, maxDelayMs: 200 }, metrics: harness.metrics, logger: logs },
  });
  await topology.connect(5000);
  const announcements: number[] = [];
  topology.onMasterChange(() => announcements.push(Date.now()));
  const core = createGatewayCore(
    {
      sessions: new RedisSessionStore(topology.master, { keyPrefix }),
      replay: new RedisReplayStore(topology.master, { keyPrefix }),
      revocations: new RedisRevocationStore(topology.master, { keyPrefix, streamKey: stream }),
      signer,
      metrics: harness.metrics,
      logger: logs,
    },
    { freshnessWindowMs: 60_000 },
  );
  const subscriber = new RedisStreamSubscriber({ topology, readFrom: 'master', streamKey: stream, handler: core.sessionEvents, blockMs: 500, metrics: harness.metrics, logger: logs });
  await subscriber.start();
  const gateway = { core, topology, subscriber, harness, lines: logs.lines, announcements };
  gateways.push(gateway);
  return gateway;
}

beforeAll(async () => {
  topo = await startSentinelTopology();
});

afterAll(async () => {
  for (const g of gateways) {
    // The core's step stops the subscriber and the re-assert retries.
    const step = g.core.shutdownSteps({ eventSources: [g.subscriber] }).find((s) => s.component === 'stream subscribers');
    await step?.stop(10_000);
    await g.topology.close();
  }
  await topo?.stop();
});

const node = (port: number, password: string, args: string[]) => redisCommand('127.0.0.1', port, password, args);

describe('a revocation survives a Sentinel failover', () => {
  it('lost with the old master: refused throughout, re-asserted on the new master within 10 s by one of two gateways, counted and logged', async () => {
    const stream = unique('session-events');
    const first = await startGateway(stream);
    const second = await startGateway(stream);
    const id = unique('ds').replaceAll(':', '-');
    const key = `${keyPrefix}session:${id}`;
    const publicKey = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
    const active = { device_session_id: id, user_id: 'alice@example.com', status: 'active', client_public_key: publicKey };
    const old = await topo.masterNode();
    const replica = (await topo.replicaNodes())[0];
    if (replica === undefined) throw new Error('no replica');

    // Created durably: record and snapshot acknowledged by the replica.
    await node(old.port, topo.password, ['HSET', key, ...Object.entries(active).flat()]);
    await node(old.port, topo.password, ['XADD', stream, '*', ...Object.entries(active).flat()]);
    await waitFor(async () => String(await node(replica.port, topo.password, ['HGET', key, 'status'])) === 'active', { message: 'active record replicated' });
    for (const g of [first, second]) {
      await waitFor(() => g.core.sessionCache.peek(id)?.session.status === 'active', { message: 'active snapshot consumed' });
    }

    // Cut the replica off (it cannot authenticate again), then revoke on the master only.
    const cutPassword = 'cut-off-the-replica';
    await node(old.port, topo.password, ['CONFIG', 'SET', 'requirepass', cutPassword]);
    await node(old.port, cutPassword, ['CLIENT', 'KILL', 'TYPE', 'replica']);
    const revokedAt = String(Date.now());
    const revoked = { ...active, status: 'revoked', revoked_at_ms: revokedAt };
    await node(old.port, cutPassword, ['HSET', key, 'status', 'revoked', 'revoked_at_ms', revokedAt]);
    await node(old.port, cutPassword, ['XADD', stream, '*', ...Object.entries(revoked).flat()]);
    for (const g of [first, second]) {
      await waitFor(() => g.core.sessionCache.peek(id)?.session.status === 'revoked', { message: 'revoked snapshot consumed' });
    }
    expect(String(await node(replica.port, topo.password, ['HGET', key, 'status']))).toBe('active');

    // Every check of the session while the master dies and the replica (without the revocation) takes over.
    const outcomes: string[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        for (const g of [first, second]) {
          try {
            outcomes.push((await g.core.sessionCache.lookup(id))?.session.status ?? 'unknown');
          } catch (error) {
            outcomes.push(`error: ${String(error)}`);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    try {
      await old.kill();
      const promoted = await topo.waitForNewMaster(old.port);
      for (const g of [first, second]) await waitFor(() => g.topology.master.port === promoted.port, { message: 'gateway follows the new master', timeoutMs: 10_000 });
      const announced = Math.min(...[first, second].map((g) => g.announcements[0] ?? Date.now()));
      const reasserted = await waitFor(
        async () => {
          const record = flatToRecord(await node(promoted.port, topo.password, ['HGETALL', key]));
          return record['status'] === 'revoked' ? record : undefined;
        },
        { message: 'revoked record on the new master', timeoutMs: Math.max(1, announced + 10_000 - Date.now()), intervalMs: 50 },
      );
      expect(Date.now() - announced).toBeLessThan(10_000);
      expect(reasserted).toEqual(revoked);
      const snapshots = await waitFor(
        async () => {
          const reply = await node(promoted.port, topo.password, ['XRANGE', stream, '-', '+']);
          const entries = (Array.isArray(reply) ? reply : []).map((e) => flatToRecord((Array.isArray(e) ? e[1] : null)));
          const found = entries.filter((f) => f['device_session_id'] === id && f['status'] === 'revoked');
          return found.length > 0 ? found : undefined;
        },
        { message: 'revoked snapshot on the new master', timeoutMs: Math.max(1, announced + 10_000 - Date.now()), intervalMs: 50 },
      );
      // Of the two gateways re-asserting at once, one wrote.
      expect(snapshots).toEqual([revoked]);
      for (const g of [first, second]) {
        await waitFor(() => g.lines.some((l) => l.message === 'revocations checked against the master'), { message: 'both gateways checked', timeoutMs: 10_000 });
      }
      const counted = (await first.harness.value(MetricNames.revocationsReasserted)) + (await second.harness.value(MetricNames.revocationsReasserted));
      expect(counted).toBe(1);
      const line = [...first.lines, ...second.lines].find((l) => l.message === 'revocations re-asserted: the master lacked them (lost in a failover)');
      expect(line?.fields).toMatchObject({ reason: 'session-events history diverged', device_session_ids: [id] });
      expect([...first.lines, ...second.lines].some((l) => l.message.startsWith('stream history diverged'))).toBe(true);

      // A gateway process started now learns it from the new master, as any other revoked session.
      const fresh = createGatewayCore({ sessions: new RedisSessionStore(first.topology.master, { keyPrefix }), replay: new RedisReplayStore(first.topology.master, { keyPrefix }), signer });
      expect((await fresh.sessionCache.lookup(id))?.session.status).toBe('revoked');
    } finally {
      polling = false;
      await poller;
    }
    expect(outcomes.length).toBeGreaterThan(20);
    expect(new Set(outcomes)).toEqual(new Set(['revoked']));
    await topo.rejoinAsReplica(old, 30_000);
  }, 90_000);
});

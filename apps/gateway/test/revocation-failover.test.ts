/**
 * A revocation survives a failover (issue 21, SPEC §5.1, §5.3, §5.5): the BUILT binary and CLI
 * on a master, a replica and three Sentinels. `sessions create` waits for the replica; a
 * revocation the replica never received is refused throughout the failover that loses it and
 * written back to the new master by the gateway.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient } from '@edge-gateway/client';
import { redisCommand, startSentinelTopology, waitFor, type SentinelTopology } from '@edge-gateway/test-utils';
import { runCli } from '@edge-gateway/test-utils/entry-process';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { CommandLoad, sentinelEnv } from './failover-support.js';
import { StreamWatcher, scrape } from './drill-support.js';
import { EchoDownstream } from '@edge-gateway/test-utils/system-support';

let topo: SentinelTopology;
let downstream: EchoDownstream;
let signer: ReturnType<typeof writeSignerKey>;
let gateway: GatewayProcess;
let addresses: Awaited<ReturnType<GatewayProcess['started']>>;
const clients: GatewayClient[] = [];

const env = (extra: Record<string, string> = {}) =>
  gatewayEnv({ port: 0, password: topo.password }, signer.path, {
    ...sentinelEnv(topo),
    GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_REDIS_COMMAND_TIMEOUT: '500ms',
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
    GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}`,
    // The revoked device keeps sending through the whole failover (~100 refusals/s on one
    // connection): past the default failure budget (20/s:40, SPEC §2.2) the connection would be
    // closed 'too many failed requests', which is not what this test watches.
    GATEWAY_CONNECTION_FAILURE_LIMIT: '1000/s:1000',
    ...extra,
  });

beforeAll(async () => {
  topo = await startSentinelTopology({ sentinelPassword: 'sentinel-pw' });
  downstream = await new EchoDownstream().start();
  signer = writeSignerKey();
  gateway = new GatewayProcess(env());
  addresses = await gateway.started();
});

afterAll(async () => {
  for (const client of clients) client.close();
  await gateway?.stop();
  downstream?.stop();
  await topo?.stop();
});

const onNode = (port: number, args: string[]) => redisCommand('127.0.0.1', port, topo.password, args);

function fields(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

describe('a revocation survives a Sentinel failover (built binary and CLI)', () => {
  it('create waits for the replica; a revocation no replica acknowledged (exit 3) is refused throughout the failover that loses it and re-asserted within 10 s', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-revoke-failover-'));
    const id = `ds-reassert-${process.pid}`;
    const pem = join(dir, 'device.pem');
    const created = await runCli(['sessions', 'create', '--user', 'u-reassert', '--id', id, '--out', pem], env());
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('✓ replicated: 1 replica(s) acknowledged the record and snapshot (WAIT 1 1000)');
    const old = await topo.masterNode();
    const replica = (await topo.replicaNodes())[0];
    if (replica === undefined) throw new Error('no replica');
    // Acknowledged means there: the replica holds the record before anything else happens.
    expect(fields(await onNode(replica.port, ['HGETALL', `gateway:session:${id}`]))['status']).toBe('active');

    const client = new GatewayClient({ address: addresses.grpc, deviceSessionId: id, privateKey: readFileSync(pem, 'utf8'), gatewayPublicKeys: [signer.publicKeyRaw] });
    clients.push(client);
    await expect(client.execute('echo.ping', Buffer.from('before'))).resolves.toMatchObject({ resultCode: 'ok' });
    const watcher = new StreamWatcher(client);
    await watcher.waitForCount(1);

    // Cut the replica off (it can no longer authenticate to the master), then revoke.
    await onNode(replica.port, ['CONFIG', 'SET', 'masterauth', 'wrong-password']);
    await onNode(replica.port, ['CLIENT', 'KILL', 'TYPE', 'master']);
    const revoked = await runCli(['sessions', 'revoke', id, '--wait', '300ms'], env());
    expect(revoked.code).toBe(3);
    expect(revoked.stdout).toContain('! not replicated: no replica acknowledged the revoked record and snapshot within 300ms; a failover now can lose the revocation');
    const revokedAt = /status=revoked revoked_at_ms=(\d+)/.exec(revoked.stdout)?.[1];
    await watcher.finished;
    expect(watcher.error).toMatchObject({ details: 'device session is revoked' });
    expect(fields(await onNode(replica.port, ['HGETALL', `gateway:session:${id}`]))['status']).toBe('active');

    // Every command of the revoked device, from now until the new master holds the revocation.
    const load = new CommandLoad(client, 2);
    try {
      await waitFor(() => load.outcomes.length >= 5, { message: 'load running' });
      await old.kill();
      const promoted = await topo.waitForNewMaster(old.port);
      await onNode(promoted.port, ['CONFIG', 'SET', 'masterauth', topo.password]);
      const changed = await gateway.waitForLog((l) => l.message === 'redis master changed' && l['to'] === `127.0.0.1:${promoted.port}`);
      const reasserted = await gateway.waitForLog((l) => l.message === 'revocations re-asserted: the master lacked them (lost in a failover)', 15_000);
      expect(reasserted).toMatchObject({ level: 'warn', reason: 'session-events history diverged', count: 1, device_session_ids: [id] });
      expect(Date.parse(reasserted.timestamp) - Date.parse(changed.timestamp)).toBeLessThan(10_000);

      const record = fields(await onNode(promoted.port, ['HGETALL', `gateway:session:${id}`]));
      expect(record).toMatchObject({ device_session_id: id, user_id: 'u-reassert', status: 'revoked', revoked_at_ms: revokedAt });
      const snapshots = ((await onNode(promoted.port, ['XRANGE', 'gateway:session-events', '-', '+'])) as unknown[])
        .map((entry) => fields(Array.isArray(entry) ? entry[1] : undefined))
        .filter((f) => f['device_session_id'] === id);
      // The active snapshot (replicated), then the re-asserted revoked one (the original was lost).
      expect(snapshots.map((f) => f['status'])).toEqual(['active', 'revoked']);
      expect(snapshots[1]).toEqual(record);
      expect(await scrape(addresses.adminHttp ?? '', 'gateway_revocations_reasserted_total')).toBe(1);
      const outcomesAtReassert = load.outcomes.length;
      await waitFor(() => load.outcomes.length > outcomesAtReassert + 5, { message: 'commands after the re-assert' });
    } finally {
      await load.stop();
    }
    // Refused throughout: not one command ran, none was told anything else.
    expect(load.outcomes.length).toBeGreaterThan(10);
    expect(new Set(load.outcomes.map((o) => `${o.code} ${o.details}`))).toEqual(new Set(['FAILED_PRECONDITION device session is revoked']));
    expect(downstream.calls.filter((c) => c.command.deviceSessionId === id)).toHaveLength(1);

    // A gateway process started now finds the revoked record on the new master.
    const late = new GatewayProcess(env());
    try {
      const lateAddresses = await late.started();
      const lateClient = new GatewayClient({ address: lateAddresses.grpc, deviceSessionId: id, privateKey: readFileSync(pem, 'utf8'), gatewayPublicKeys: [signer.publicKeyRaw] });
      clients.push(lateClient);
      await expect(lateClient.execute('echo.ping', Buffer.from('late'))).rejects.toMatchObject({ details: 'device session is revoked' });
    } finally {
      await late.stop();
    }
    await topo.rejoinAsReplica(old, 30_000);
  }, 120_000);
});

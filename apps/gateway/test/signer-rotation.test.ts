/**
 * Signer key rotation without downtime (issue 16), against the built binary: the procedure of
 * docs/key-rotation.md with a push stream open across the rotation.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient } from '@edge-gateway/client';
import { keyId } from '@edge-gateway/core';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { EchoDownstream, EventCollector, connectRedis, newDevice, publishEvent, writeSession, type RawRedis } from '@edge-gateway/test-utils/system-support';

let redis: RedisServerHandle;
let raw: RawRedis;
let downstream: EchoDownstream;
let gateway: GatewayProcess;
let addresses: Awaited<ReturnType<GatewayProcess['started']>>;
const oldKey = writeSignerKey();
const newKey = writeSignerKey();
const oldId = keyId(oldKey.publicKeyRaw);
const newId = keyId(newKey.publicKeyRaw);

/** Replaces the key file the way an operator (or a Secret mount) does: write aside, rename over. */
function installKeyFile(contents: string): void {
  const aside = join(dirname(oldKey.path), 'signer.pem.next');
  writeFileSync(aside, contents, { mode: 0o600 });
  renameSync(aside, oldKey.path);
}

/** `key_id value` of every `gateway_signer_key_info` sample on /metrics. */
async function signerKeyInfo(): Promise<string[]> {
  const text = await (await fetch(`http://${addresses.adminHttp}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('gateway_signer_key_info{'))
    .map((l) => `${/key_id="([^"]*)"/.exec(l)?.[1]} ${l.slice(l.lastIndexOf(' ') + 1)}`);
}

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  downstream = await new EchoDownstream().start();
  gateway = new GatewayProcess(
    gatewayEnv(redis, oldKey.path, { GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0', GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}` }),
  );
  addresses = await gateway.started();
});

afterAll(async () => {
  await gateway?.stop();
  downstream?.stop();
  await raw?.quit();
  await redis?.stop();
});

describe('signer key rotation on SIGHUP', () => {
  it('rotates with a stream open: events before are signed by the old key id, after by the new; a bad key keeps the current one', async () => {
    expect(await signerKeyInfo()).toEqual([`${oldId} 1`]);

    // Step 1 of the procedure: clients already trust both keys.
    const device = newDevice('rotation-user');
    await writeSession(raw, device, 'active');
    const client = new GatewayClient({
      address: addresses.grpc,
      deviceSessionId: device.deviceSessionId,
      userId: device.userId,
      privateKey: device.privateKey,
      gatewayPublicKeys: [oldKey.publicKeyRaw, newKey.publicKeyRaw],
    });
    const stream = new EventCollector(client.subscribe());
    try {
      await stream.waitForCount(1);
      await publishEvent(raw, { userId: device.userId, eventType: 'rotation.before', payload: Buffer.from('1') });
      await stream.waitForCount(2);
      expect((await client.execute('echo.before', Buffer.from('a'))).signerKeyId).toBe(oldId);

      // Step 2: install the new key and SIGHUP.
      installKeyFile(newKey.pem);
      gateway.signal('SIGHUP');
      const rotated = await gateway.waitForLog('signer key rotated');
      expect(rotated).toMatchObject({ old_signer_key_id: oldId, new_signer_key_id: newId, level: 'info' });

      await publishEvent(raw, { userId: device.userId, eventType: 'rotation.after', payload: Buffer.from('2') });
      await stream.waitForCount(3);
      expect((await client.execute('echo.after', Buffer.from('b'))).signerKeyId).toBe(newId);
      expect(stream.events.map((e) => [e.eventType, e.signerKeyId])).toEqual([
        ['gateway.server_time', oldId],
        ['rotation.before', oldId],
        ['rotation.after', newId],
      ]);
      expect(stream.ended).toBe(false);
      expect((await signerKeyInfo()).sort()).toEqual([`${newId} 1`, `${oldId} 0`].sort());

      // A bad new key: the current key stays and the log says why.
      installKeyFile('not a key\n');
      gateway.signal('SIGHUP');
      const failed = await gateway.waitForLog('signer key reload failed: keeping the current key');
      expect(failed).toMatchObject({ level: 'error', signer_key_id: newId });
      expect(String(failed['error'])).toMatch(/^GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: .*not a PEM private key/);
      expect(gateway.raw).not.toContain('PRIVATE KEY');
      await publishEvent(raw, { userId: device.userId, eventType: 'rotation.kept', payload: Buffer.from('3') });
      await stream.waitForCount(4);
      expect(stream.events[3]?.signerKeyId).toBe(newId);
      expect(gateway.running).toBe(true);
    } finally {
      client.close();
    }

    // Step 3: retire the old key: a client that trusts only the new key works.
    const retired = new GatewayClient({
      address: addresses.grpc,
      deviceSessionId: device.deviceSessionId,
      userId: device.userId,
      privateKey: device.privateKey,
      gatewayPublicKeys: [newKey.publicKeyRaw],
    });
    try {
      const answer = await retired.execute('echo.retired', Buffer.from('c'));
      expect(answer.signerKeyId).toBe(newId);
    } finally {
      retired.close();
    }
    expect(gateway.logs.filter((l) => l.message === 'signer key rotated')).toHaveLength(1);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayClient } from '@edge-gateway/client';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { LineProcess, runScript } from '@edge-gateway/test-utils/entry-process';
import { GatewayProcess, REPO_ROOT, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';

// Runs every example in examples/src as the program it is (built JS, child processes) against
// the built gateway and a real redis-server: the integration guide's path end to end
// (docs/integration.md).

const EXAMPLE = (name: string) => join(REPO_ROOT, 'examples/dist', `${name}.js`);

let redis: RedisServerHandle;
let signer: ReturnType<typeof writeSignerKey>;
let orders: LineProcess;
let gateway: GatewayProcess;
let grpcAddress: string;
let dir: string;

function redisEnv(): Record<string, string> {
  // A lone Redis: no replica ever acknowledges; a short wait keeps the tests quick.
  return { REDIS_URL: `redis://:${redis.password}@127.0.0.1:${redis.port}`, WAIT_MS: '50' };
}

/** A device key pair as the app would make it: PKCS#8 PEM file plus the raw public key. */
function deviceKey(name: string): { path: string; publicKeyBase64: string; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const path = join(dir, `${name}.pem`);
  writeFileSync(path, pem, { mode: 0o600 });
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { path, pem, publicKeyBase64: der.subarray(der.length - 32).toString('base64') };
}

/** The auth-service example: creates the session, returns its id. */
async function createSession(userId: string, publicKeyBase64: string): Promise<string> {
  const result = await runScript(EXAMPLE('device-sessions'), ['create', userId, publicKeyBase64], redisEnv());
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  const created = JSON.parse(result.stdout) as { deviceSessionId: string; userId: string; snapshotId: string; replicas: number };
  expect(created.userId).toBe(userId);
  expect(created.replicas).toBe(0);
  expect(created.snapshotId).toMatch(/^\d+-\d+$/);
  return created.deviceSessionId;
}

function deviceEnv(sessionId: string, keyPath: string): Record<string, string> {
  return {
    GATEWAY_GRPC_ADDR: grpcAddress,
    DEVICE_SESSION_ID: sessionId,
    DEVICE_KEY_PATH: keyPath,
    GATEWAY_PUBLIC_KEYS: signer.publicKeyRaw.toString('base64'),
  };
}

beforeAll(async () => {
  redis = await startRedisServer();
  signer = writeSignerKey();
  dir = mkdtempSync(join(tmpdir(), 'eg-examples-'));
  orders = new LineProcess(EXAMPLE('orders-service'), [], { ORDERS_SERVICE_ADDR: '127.0.0.1:0' });
  const listening = await orders.waitForLine((l) => l.startsWith('orders service listening on '));
  const ordersAddress = listening.slice('orders service listening on '.length);
  gateway = new GatewayProcess(gatewayEnv(redis, signer.path, { GATEWAY_DOWNSTREAM_ROUTES: `orders.=${ordersAddress}`, GATEWAY_SHUTDOWN_TIMEOUT: '5s' }));
  grpcAddress = (await gateway.started()).grpc;
});

afterAll(async () => {
  await gateway?.stop();
  await orders?.stop();
  await redis?.stop();
});

describe('examples: auth service -> session -> device -> CommandHandler -> events', () => {
  it('a device signed in through the auth example runs a command on the orders service and receives the published event', async () => {
    const key = deviceKey('alice-phone');
    const sessionId = await createSession('alice', key.publicKeyBase64);

    const device = new LineProcess(EXAMPLE('device-app'), [], deviceEnv(sessionId, key.path));
    try {
      await device.waitForLine((l) => l.startsWith('stream open: gateway.server_time'));
      const created = await device.waitForLine((l) => l.startsWith('orders.create -> '));
      expect(created).toMatch(/^orders\.create -> created \{"order_id":"ord-[0-9a-f-]{36}","sku":"BOOK-42","quantity":1\}$/);
      const orderId = /"order_id":"([^"]+)"/.exec(created)?.[1] ?? '';

      const published = await runScript(EXAMPLE('publish-event'), ['alice', 'orders.shipped', JSON.stringify({ order_id: orderId }), sessionId], redisEnv());
      expect(published.stderr).toBe('');
      expect(published.code).toBe(0);
      const eventId = published.stdout.trim();
      expect(eventId).toMatch(/^\d+-\d+$/);

      expect((await device.exited).code).toBe(0);
      expect(device.lines.at(-1)).toBe(`event ${eventId} orders.shipped {"order_id":"${orderId}"}`);
      expect(device.stderr).toBe('');
    } finally {
      await device.stop();
    }
  });

  it('revoking through the auth example ends the device stream with FAILED_PRECONDITION', async () => {
    const key = deviceKey('bob-phone');
    const sessionId = await createSession('bob', key.publicKeyBase64);
    const device = new LineProcess(EXAMPLE('device-app'), [], deviceEnv(sessionId, key.path));
    try {
      await device.waitForLine((l) => l.startsWith('orders.create -> created '));
      const revoked = await runScript(EXAMPLE('device-sessions'), ['revoke', sessionId], redisEnv());
      expect(revoked.code).toBe(0);
      expect(JSON.parse(revoked.stdout)).toMatchObject({ deviceSessionId: sessionId, status: 'revoked', replicas: 0 });
      expect((await device.exited).code).toBe(1);
      expect(device.stderr).toBe('gateway refused: FAILED_PRECONDITION device session is revoked\n');
    } finally {
      await device.stop();
    }
    const unknown = await runScript(EXAMPLE('device-sessions'), ['revoke', 'ds-nobody'], redisEnv());
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('no session record for ds-nobody\n');
  });

  it('the orders service answers bad input and other users\' orders with result codes, scoped to the caller', async () => {
    const alice = deviceKey('alice-tablet');
    const mallory = deviceKey('mallory-phone');
    const aliceSession = await createSession('alice', alice.publicKeyBase64);
    const mallorySession = await createSession('mallory', mallory.publicKeyBase64);
    const client = (sessionId: string, pem: string) =>
      new GatewayClient({ address: grpcAddress, deviceSessionId: sessionId, privateKey: pem, gatewayPublicKeys: [signer.publicKeyRaw] });
    const aliceClient = client(aliceSession, alice.pem);
    const malloryClient = client(mallorySession, mallory.pem);
    try {
      const bad = await aliceClient.execute('orders.create', Buffer.from('{"sku":"x y","quantity":1}'));
      expect([bad.resultCode, Buffer.from(bad.payload).toString()]).toEqual(['invalid', '{"error":"sku must be 1-32 of [A-Z0-9-]"}']);
      const notJson = await aliceClient.execute('orders.create', Buffer.from('not json'));
      expect(notJson.resultCode).toBe('invalid');

      const created = await aliceClient.execute('orders.create', Buffer.from('{"sku":"PEN-1","quantity":3}'));
      const { order_id: orderId } = JSON.parse(Buffer.from(created.payload).toString()) as { order_id: string };
      const own = await aliceClient.execute('orders.get', Buffer.from(JSON.stringify({ order_id: orderId })));
      expect(own.resultCode).toBe('ok');
      const other = await malloryClient.execute('orders.get', Buffer.from(JSON.stringify({ order_id: orderId })));
      expect([other.resultCode, Buffer.from(other.payload).toString()]).toEqual(['not_found', '{"error":"no such order"}']);
      const unknown = await aliceClient.execute('orders.cancel', Buffer.from('{}'));
      expect(unknown.resultCode).toBe('unknown_message_type');
    } finally {
      aliceClient.close();
      malloryClient.close();
    }
  });

  it('the publisher example refuses an event the gateway would drop, before writing it', async () => {
    const result = await runScript(EXAMPLE('publish-event'), ['alice', 'gateway.fake', '{}'], redisEnv());
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('not published: event_type must match [a-z][a-z0-9._-]{0,127} and not start with "gateway."\n');
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { GatewayStatusError } from '@edge-gateway/client';
import { Ed25519ResponseSigner } from '@edge-gateway/core';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { CLI, LineProcess, runCli } from '@edge-gateway/test-utils/entry-process';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { clientFor, connectRedis, endError, newDevice, publishEvent, take, writeSession, type RawRedis } from '@edge-gateway/test-utils/system-support';

let redis: RedisServerHandle;
let raw: RawRedis;
let signer: ReturnType<typeof writeSignerKey>;
let dir: string;

function env(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return gatewayEnv(redis, signer.path, {
    GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_DOWNSTREAM_ROUTES: 'echo.=127.0.0.1:50051',
    GATEWAY_AUTH_UPSTREAM_URL: 'http://127.0.0.1:50052',
    ...extra,
  });
}

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  signer = writeSignerKey();
  dir = mkdtempSync(join(tmpdir(), 'eg-cli-'));
});

afterAll(async () => {
  await raw?.quit();
  await redis?.stop();
});

const lines = (stdout: string) => stdout.split('\n').filter((l) => l !== '');

describe('edge-gateway usage', () => {
  it('prints the usage and exits 2 for no or an unknown command; --help everywhere exits 0', async () => {
    const none = await runCli([], {});
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: edge-gateway <command>');
    const unknown = await runCli(['frobnicate'], {});
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    expect(unknown.stderr).toContain('Usage: edge-gateway <command>');
    for (const args of [['--help'], ['keygen', '--help'], ['doctor', '--help'], ['sessions', '--help'], ['events', 'publish', '--help'], ['streams', '--help']]) {
      const help = await runCli(args, {});
      expect(help.code, args.join(' ')).toBe(0);
      expect(help.stdout, args.join(' ')).toMatch(/^Usage: edge-gateway/);
    }
    const badFlag = await runCli(['keygen', '--bogus'], {});
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('Usage: edge-gateway keygen');
  });
});

describe('edge-gateway keygen', () => {
  it('writes a 0600 PKCS#8 Ed25519 key the gateway accepts and prints its public key and key id', async () => {
    const path = join(dir, 'signer-new.pem');
    const result = await runCli(['keygen', '--out', path], {});
    expect(result.code).toBe(0);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const pem = readFileSync(path, 'utf8');
    expect(pem).toContain('-----BEGIN PRIVATE KEY-----');
    expect(result.stdout).not.toContain(pem.split('\n')[1]);
    const loaded = Ed25519ResponseSigner.fromPem(pem);
    expect(result.stdout).toContain(`key id: ${loaded.keyId}\n`);
    expect(result.stdout).toContain(`public key (base64 of the raw 32 bytes): ${Buffer.from(loaded.publicKey).toString('base64')}\n`);

    const again = await runCli(['keygen', '--out', path], {});
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists; refusing to overwrite it (use --force');
    expect(readFileSync(path, 'utf8')).toBe(pem);

    const forced = await runCli(['keygen', '--out', path, '--force'], {});
    expect(forced.code).toBe(0);
    expect(readFileSync(path, 'utf8')).not.toBe(pem);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});

describe('edge-gateway doctor', () => {
  it('passes on a good setup: every check ✓, stream lengths and last ids, exit 0, no password', async () => {
    const id = await publishEvent(raw, { userId: 'u-doctor', eventType: 'doctor.test', payload: Buffer.from('x') });
    const result = await runCli(['doctor'], env());
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const out = lines(result.stdout);
    expect(out.filter((l) => l.startsWith('✗'))).toEqual([]);
    expect(out).toContain(`✓ redis: PING: PONG from 127.0.0.1:${redis.port} db 0 with the configured password`);
    expect(out.some((l) => l.startsWith(`✓ signer key: loads: PKCS#8 Ed25519 from ${signer.path}, key id `))).toBe(true);
    expect(out.some((l) => l.startsWith('✓ stream client-events (gateway:client-events): stream, length ') && l.endsWith(`last id ${id}`))).toBe(true);
    expect(out.some((l) => l.startsWith('✓ stream session-events (gateway:session-events): absent'))).toBe(true);
    expect(out.some((l) => l.startsWith('✓ listener public http 127.0.0.1:0'))).toBe(true);
    expect(out.some((l) => l.startsWith('✓ config: valid'))).toBe(true);
    expect(out.at(-1)).toBe('doctor: all checks passed');
    expect(result.stdout).not.toContain(redis.password);
  });

  it('names the Redis PING check on a wrong password (and prints neither password)', async () => {
    const result = await runCli(['doctor'], env({ GATEWAY_REDIS_PASSWORD: 'not-the-password' }));
    expect(result.code).toBe(1);
    expect(lines(result.stdout)).toContain(`✗ redis: PING: redis PING failed: authentication failed (wrong password?) for 127.0.0.1:${redis.port}`);
    expect(result.stdout).toContain('doctor: 1 check(s) failed: redis: PING');
    expect(result.stdout + result.stderr).not.toContain('not-the-password');
    expect(result.stdout + result.stderr).not.toContain(redis.password);
  });

  it('names the signer key check for an RSA PKCS#8 key', async () => {
    const rsa = join(dir, 'rsa.pem');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), { mode: 0o600 });
    const result = await runCli(['doctor'], env({ GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: rsa }));
    expect(result.code).toBe(1);
    expect(lines(result.stdout)).toContain('✗ signer key: loads: GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: signer key is rsa, expected ed25519');
    expect(result.stdout).toContain('doctor: 1 check(s) failed: signer key: loads');
  });

  it('names the stream check when a stream key holds something else', async () => {
    await raw.set('doctor:not-a-stream', 'oops');
    const result = await runCli(['doctor'], env({ GATEWAY_SESSION_EVENTS_REDIS_STREAM: 'doctor:not-a-stream' }));
    expect(result.code).toBe(1);
    expect(lines(result.stdout)).toContain(
      "✗ stream session-events (doctor:not-a-stream): the key holds a string, not a stream: the gateway's XREAD on it fails (WRONGTYPE)",
    );
  });

  it('names a deprecated variable', async () => {
    const result = await runCli(['doctor'], env({ GATEWAY_REDIS_USERNAME: 'default' }));
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('✗ config: deprecated variable GATEWAY_REDIS_USERNAME: is set: no longer accepted');
    // The other checks still run against the rest of the config.
    expect(result.stdout).toContain('✓ redis: PING');
  });

  it('probes a running gateway with --probe', async () => {
    const gateway = new GatewayProcess(env());
    try {
      const addresses = await gateway.started();
      const running = env({
        GATEWAY_PUBLIC_HTTP_ADDR: addresses.publicHttp,
        GATEWAY_AUTHENTICATED_GRPC_ADDR: addresses.grpc,
        GATEWAY_ADMIN_HTTP_ADDR: addresses.adminHttp,
      });
      const result = await runCli(['doctor', '--probe'], running);
      const out = lines(result.stdout);
      expect(out).toContain(`✓ probe /healthz: http://${addresses.publicHttp}/healthz answered 200`);
      expect(out).toContain(`✓ probe /readyz: http://${addresses.publicHttp}/readyz answered 200`);
      expect(out).toContain(`✓ probe /metrics: http://${addresses.adminHttp}/metrics answered 200`);
      // The ports are taken by the very gateway being probed: recognised as such, no warning.
      const port = (address: string | undefined) => String(address).split(':').at(-1);
      expect(out).toContain(
        `✓ listener public http ${addresses.publicHttp}: port ${port(addresses.publicHttp)} is served by the running gateway (GET http://${addresses.publicHttp}/healthz answered {"status":"ok"})`,
      );
      expect(out).toContain(
        `✓ listener authenticated grpc ${addresses.grpc}: port ${port(addresses.grpc)} is served by the running gateway (grpc.health.v1.Health/Check answered SERVING)`,
      );
      expect(out).toContain(
        `✓ listener admin http ${addresses.adminHttp}: port ${port(addresses.adminHttp)} is served by the running gateway (GET http://${addresses.adminHttp}/metrics serves the gateway's metrics)`,
      );
      expect(out.filter((l) => l.startsWith('! listener'))).toEqual([]);
      expect(result.code).toBe(0);

      // Without --probe (a pre-start check) the taken ports are still worth a warning, naming the gateway.
      const plain = lines((await runCli(['doctor'], running)).stdout);
      expect(plain).toContain(
        `! listener authenticated grpc ${addresses.grpc}: port ${port(addresses.grpc)} is in use by a running gateway (grpc.health.v1.Health/Check answered SERVING): a second one here cannot bind it`,
      );
      // A port held by something else is a plain warning.
      const other = lines((await runCli(['doctor'], env({ GATEWAY_PUBLIC_HTTP_ADDR: `127.0.0.1:${redis.port}` }))).stdout);
      expect(other).toContain(
        `! listener public http 127.0.0.1:${redis.port}: port ${redis.port} is in use here, by something that does not answer like a gateway's public http listener`,
      );
    } finally {
      await gateway.stop();
    }
  });
});

describe('edge-gateway sessions', () => {
  it('shows a record and flags a malformed or missing one', async () => {
    const device = newDevice('u-show');
    await writeSession(raw, device, 'active');
    const shown = await runCli(['sessions', 'show', device.deviceSessionId], env());
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`record gateway:session:${device.deviceSessionId}`);
    expect(shown.stdout).toMatch(new RegExp(`client_public_key +${device.publicKeyBase64.replace(/[+/]/g, '\\$&')}`));
    expect(shown.stdout).toContain('✓ well-formed, active');

    await raw.hSet('gateway:session:broken-1', { device_session_id: 'broken-1', user_id: 'u', status: 'active' });
    const broken = await runCli(['sessions', 'show', 'broken-1'], env());
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain('✗ malformed: client_public_key is missing; the gateway treats the session as unknown');

    const missing = await runCli(['sessions', 'show', 'nobody'], env());
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain('✗ no record at gateway:session:nobody');
  });

  it('revoke closes a live stream on a running gateway with FAILED_PRECONDITION', async () => {
    const gateway = new GatewayProcess(env());
    try {
      const addresses = await gateway.started();
      const device = newDevice('u-revoke');
      await writeSession(raw, device, 'active');
      const client = clientFor(device, addresses.grpc, signer.publicKeyRaw);
      const events = client.subscribe()[Symbol.asyncIterator]();
      const [bootstrap] = await take(events, 1);
      expect(bootstrap?.eventType).toBe('gateway.server_time');

      const result = await runCli(['sessions', 'revoke', device.deviceSessionId], env());
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`✓ record gateway:session:${device.deviceSessionId}: status=revoked revoked_at_ms=\\d+`));
      expect(result.stdout).toMatch(/✓ revoked snapshot appended to gateway:session-events as \d+-\d+/);
      // A lone master: no replica to wait for (SPEC §5.1), said so.
      expect(result.stdout).toContain('- not waited for a replica: a lone master (GATEWAY_REDIS_MASTER_ADDR without GATEWAY_REDIS_REPLICA_ADDRS)');

      const error = await endError(events);
      expect(error).toBeInstanceOf(GatewayStatusError);
      expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
      client.close();

      const record = await raw.hGetAll(`gateway:session:${device.deviceSessionId}`);
      expect(record).toMatchObject({ status: 'revoked', user_id: 'u-revoke', client_public_key: device.publicKeyBase64 });
      const [snapshot] = ((await raw.xRevRange('gateway:session-events', '+', '-', { COUNT: 1 })) ?? []).map((e) => e.message);
      expect(snapshot).toEqual({ ...record });
    } finally {
      await gateway.stop();
    }
  });

  it('revokes a session whose record went malformed, and its live stream closes (fail closed)', async () => {
    const gateway = new GatewayProcess(env());
    try {
      const addresses = await gateway.started();
      const device = newDevice('u-broken');
      await writeSession(raw, device, 'active');
      const client = clientFor(device, addresses.grpc, signer.publicKeyRaw);
      const events = client.subscribe()[Symbol.asyncIterator]();
      const [bootstrap] = await take(events, 1);
      expect(bootstrap?.eventType).toBe('gateway.server_time');
      // The record breaks after the stream opened (the gateway still holds the good session).
      await raw.hSet(`gateway:session:${device.deviceSessionId}`, { client_public_key: 'not a key' });

      const result = await runCli(['sessions', 'revoke', device.deviceSessionId], env());
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('is malformed (client_public_key is not standard base64); revoking anyway');
      expect(result.stdout).toMatch(/✓ revoked snapshot appended to gateway:session-events as \d+-\d+/);
      const error = await endError(events);
      expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
      client.close();
    } finally {
      await gateway.stop();
    }
  });

  it('refuses to revoke a session without a record', async () => {
    const result = await runCli(['sessions', 'revoke', 'ghost'], env());
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no record at gateway:session:ghost: nothing to revoke');
  });
});

describe('edge-gateway events publish', () => {
  it('appends the event to the client-events stream', async () => {
    const payloadFile = join(dir, 'payload.bin');
    writeFileSync(payloadFile, Buffer.from([0, 1, 2, 255]));
    const result = await runCli(['events', 'publish', '--user', 'u-pub', '--session', 'ds-pub', '--type', 'orders.shipped', '--payload-file', payloadFile], env());
    expect(result.code).toBe(0);
    const id = /as (\d+-\d+):/.exec(result.stdout)?.[1];
    const [entry] = (await raw.xRange('gateway:client-events', id as string, id as string)) ?? [];
    expect(entry?.message).toEqual({ user_id: 'u-pub', device_session_id: 'ds-pub', event_type: 'orders.shipped', payload_base64: 'AAEC/w==' });

    const text = await runCli(['events', 'publish', '--user', 'u-pub', '--type', 'chat.message', '--payload', 'hi'], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('chat.message for every stream of user u-pub, 2 payload bytes');
  });

  it('--durable on a lone master: published, and says there is no replica to wait for', async () => {
    const result = await runCli(['events', 'publish', '--user', 'u-pub', '--type', 'chat.message', '--payload', 'hi', '--durable'], env());
    expect(result.code).toBe(0);
    expect(lines(result.stdout)).toEqual([
      expect.stringMatching(/^✓ appended to gateway:client-events as \d+-\d+: chat.message for every stream of user u-pub, 2 payload bytes$/),
      '- not waited for a replica: a lone master (GATEWAY_REDIS_MASTER_ADDR without GATEWAY_REDIS_REPLICA_ADDRS)',
    ]);
  });

  it('--wait only with --durable, and a real duration', async () => {
    const before = await raw.xLen('gateway:client-events');
    for (const [args, message] of [
      [['--wait', '1s'], '--wait is only for --durable'],
      [['--durable', '--wait', '0'], '--durable needs a --wait of at least 1ms'],
      [['--durable', '--wait', '2m'], '--wait must be a duration from 1ms to 1m, or 0 (got "2m")'],
    ] as const) {
      const result = await runCli(['events', 'publish', '--user', 'u', '--type', 'a.b', '--payload', 'x', ...args], env());
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(message);
    }
    expect(await raw.xLen('gateway:client-events')).toBe(before);
  });

  it('refuses what the gateway would drop, saying why', async () => {
    const before = await raw.xLen('gateway:client-events');
    const reserved = await runCli(['events', 'publish', '--user', 'u', '--type', 'gateway.server_time', '--payload', ''], env());
    expect(reserved.code).toBe(1);
    expect(reserved.stderr).toContain('refusing to publish: event_type uses the reserved gateway. prefix; the gateway would drop this entry as malformed');
    const invalid = await runCli(['events', 'publish', '--user', 'u', '--type', 'Bad Type', '--payload', 'x'], env());
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('refusing to publish: event_type is invalid');
    const longUser = await runCli(['events', 'publish', '--user', 'u'.repeat(257), '--type', 'a.b', '--payload', 'x'], env());
    expect(longUser.code).toBe(1);
    expect(longUser.stderr).toContain('refusing to publish: user_id is invalid');
    const both = await runCli(['events', 'publish', '--user', 'u', '--type', 'a.b'], env());
    expect(both.code).toBe(2);
    expect(await raw.xLen('gateway:client-events')).toBe(before);
  });
});

describe('edge-gateway streams tail', () => {
  it('prints new entries and flags a malformed one with the reason; Ctrl-C stops it', async () => {
    const tail = new LineProcess(CLI, ['streams', 'tail', 'client-events'], env());
    try {
      await tail.waitForLine((l) => l.startsWith('watching gateway:client-events (client-events) after '));
      const good = await publishEvent(raw, { userId: 'u-tail', deviceSessionId: 'ds-tail', eventType: 'tail.ok', payload: Buffer.from('hello') });
      const bad = await raw.xAdd('gateway:client-events', '*', { event_type: 'tail.bad', payload_base64: 'aGk=' });
      const goodLine = await tail.waitForLine((l) => l.includes(good));
      const badLine = await tail.waitForLine((l) => l.includes(bad));
      expect(goodLine).toBe(`✓ ${good} user_id=u-tail device_session_id=ds-tail event_type=tail.ok payload=5 bytes`);
      expect(badLine).toBe(`✗ ${bad} MALFORMED, the gateway drops it: user_id is missing | event_type=tail.bad payload=2 bytes`);
      tail.signal('SIGINT');
      expect((await tail.exited).code).toBe(0);
      expect(tail.lines.at(-1)).toBe('2 entries, 1 malformed');
    } finally {
      await tail.stop();
    }
  });

  it('reads session-events from the start and stops after --count entries', async () => {
    await raw.xAdd('tail:sessions', '*', { device_session_id: 'ds-1', user_id: 'u', status: 'revoked', client_public_key: newDevice('u').publicKeyBase64 });
    await raw.xAdd('tail:sessions', '*', { device_session_id: 'ds-2', user_id: 'u', status: 'paused', client_public_key: 'AAAA' });
    await raw.xAdd('tail:sessions', '*', { device_session_id: 'ds-3' });
    const result = await runCli(['streams', 'tail', 'session-events', '--from-start', '--count', '2'], env({ GATEWAY_SESSION_EVENTS_REDIS_STREAM: 'tail:sessions' }));
    expect(result.code).toBe(0);
    const entries = lines(result.stdout).filter((l) => /^[✓✗] /.test(l));
    expect(entries).toHaveLength(2);
    expect(entries[0]).toMatch(/^✓ \d+-\d+ device_session_id=ds-1 user_id=u status=revoked client_public_key=/);
    expect(entries[1]).toMatch(/^✗ \d+-\d+ MALFORMED, the gateway drops it: status is unknown \| device_session_id=ds-2/);
  });
});

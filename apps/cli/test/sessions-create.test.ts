import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayClient } from '@edge-gateway/client';
import { parseSessionFields } from '@edge-gateway/core';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { runCli } from '@edge-gateway/test-utils/entry-process';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { EchoDownstream, EventCollector, connectRedis, publishEvent, type RawRedis } from '@edge-gateway/test-utils/system-support';

let redis: RedisServerHandle;
let raw: RawRedis;
let signer: ReturnType<typeof writeSignerKey>;
let echo: EchoDownstream;
let gateway: GatewayProcess;
let grpcAddress: string;
let dir: string;

function env(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return gatewayEnv(redis, signer.path, { GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${echo.port}`, ...extra });
}

/** `name: value` lines of the command's output. */
function field(stdout: string, name: string): string | undefined {
  return stdout
    .split('\n')
    .find((l) => l.startsWith(`${name}: `))
    ?.slice(name.length + 2);
}

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  signer = writeSignerKey();
  echo = await new EchoDownstream().start();
  dir = mkdtempSync(join(tmpdir(), 'eg-sessions-create-'));
  gateway = new GatewayProcess(env({ GATEWAY_SHUTDOWN_TIMEOUT: '5s' }));
  grpcAddress = (await gateway.started()).grpc;
});

afterAll(async () => {
  await gateway?.stop();
  echo?.stop();
  await raw?.quit();
  await redis?.stop();
});

describe('edge-gateway sessions create', () => {
  it('creates a session a device can use at once: signed command and push stream against the built gateway', async () => {
    const out = join(dir, 'device.pem');
    const result = await runCli(['sessions', 'create', '--user', 'u-create', '--id', 'ds-create-1', '--out', out], env());
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(field(result.stdout, 'device_session_id')).toBe('ds-create-1');
    expect(field(result.stdout, 'private key')).toBe(`${out} (PKCS#8 PEM Ed25519, mode 0600; give it to the device only)`);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const pem = readFileSync(out, 'utf8');
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    // The private key never reaches the output; the gateway's key the device must trust does.
    expect(result.stdout).not.toContain(pem.split('\n')[1]);
    expect(result.stdout).toContain(`gateway key       ${signer.publicKeyRaw.toString('base64')} (key id `);

    // The record (SPEC §5.1) and then its active snapshot (SPEC §5.3) are in Redis.
    const record = await raw.hGetAll('gateway:session:ds-create-1');
    const parsed = parseSessionFields(record);
    expect(parsed.ok && parsed.session.status === 'active' && parsed.session.userId === 'u-create').toBe(true);
    const [snapshot] = (await raw.xRevRange('gateway:session-events', '+', '-', { COUNT: 1 })) ?? [];
    expect(snapshot?.message).toEqual(record);
    expect(result.stdout).toContain(`snapshot          gateway:session-events ${snapshot?.id}`);
    // A lone master: nothing to wait for, said so before the two lines scripts read.
    const lines = result.stdout.trim().split('\n');
    expect(lines.at(-3)).toBe('- not waited for a replica: a lone master (GATEWAY_REDIS_MASTER_ADDR without GATEWAY_REDIS_REPLICA_ADDRS)');

    const client = new GatewayClient({
      address: grpcAddress,
      deviceSessionId: 'ds-create-1',
      privateKey: pem,
      gatewayPublicKeys: [signer.publicKeyRaw],
    });
    try {
      const controller = new AbortController();
      const events = new EventCollector(client.subscribe({ signal: controller.signal }));
      await events.waitForCount(1);
      expect(events.events[0]).toMatchObject({ eventType: 'gateway.server_time', userId: 'u-create', deviceSessionId: 'ds-create-1' });

      const response = await client.execute('echo.ping', Buffer.from('hi'));
      expect(response.resultCode).toBe('ok');
      expect(Buffer.from(response.payload).toString()).toBe('hi');
      expect(echo.calls.at(-1)?.command).toMatchObject({ userId: 'u-create', deviceSessionId: 'ds-create-1', messageType: 'echo.ping' });

      const id = await publishEvent(raw, { userId: 'u-create', deviceSessionId: 'ds-create-1', eventType: 'orders.shipped', payload: Buffer.from('x') });
      await events.waitForCount(2);
      expect(events.events[1]).toMatchObject({ eventId: id, eventType: 'orders.shipped' });
      controller.abort();
      await events.finished;
    } finally {
      client.close();
    }
  });

  it('generates an id and a key file name when none is given', async () => {
    const result = await runCli(['sessions', 'create', '--user', 'u-gen'], env(), undefined, dir);
    expect(result.code).toBe(0);
    const id = field(result.stdout, 'device_session_id') ?? '';
    expect(id).toMatch(/^ds-[0-9a-f]{24}$/);
    expect(existsSync(join(dir, `${id}.pem`))).toBe(true);
    expect(await raw.hGet(`gateway:session:${id}`, 'user_id')).toBe('u-gen');
  });

  it('refuses an id that already has a record, and leaves record and key file alone', async () => {
    const out = join(dir, 'taken.pem');
    const first = await runCli(['sessions', 'create', '--user', 'u-taken', '--id', 'ds-taken', '--out', out], env());
    expect(first.code).toBe(0);
    const record = await raw.hGetAll('gateway:session:ds-taken');
    const key = readFileSync(out, 'utf8');
    const second = await runCli(['sessions', 'create', '--user', 'u-other', '--id', 'ds-taken', '--out', join(dir, 'other.pem')], env());
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('gateway:session:ds-taken already exists: refusing to replace');
    expect(await raw.hGetAll('gateway:session:ds-taken')).toEqual(record);
    expect(existsSync(join(dir, 'other.pem'))).toBe(false);
    expect(readFileSync(out, 'utf8')).toBe(key);

    // An existing key file is not replaced without --force, and then nothing is written to Redis.
    const before = await raw.xLen('gateway:session-events');
    const clash = await runCli(['sessions', 'create', '--user', 'u-x', '--id', 'ds-clash', '--out', out], env());
    expect(clash.code).toBe(1);
    expect(clash.stderr).toContain('already exists; refusing to overwrite it (use --force');
    expect(await raw.exists('gateway:session:ds-clash')).toBe(0);
    expect(await raw.xLen('gateway:session-events')).toBe(before);
  });

  it('is listed in the top-level usage and has its own --help', async () => {
    expect((await runCli(['--help'], {})).stdout).toContain('  sessions create --user U [--id S] [--out device.pem]\n');
    const help = await runCli(['sessions', '--help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('edge-gateway sessions create --user <user_id> [--id <device_session_id>] [--out <device.pem>] [--force]');
  });

  it('refuses bad input with exit 2 and the usage: no user, a bad user_id, a bad id, a positional id', async () => {
    for (const args of [
      ['sessions', 'create'],
      ['sessions', 'create', '--user', 'u', '--id', 'bad id!'],
      ['sessions', 'create', 'ds-1', '--user', 'u'],
      ['sessions', 'create', '--user', 'line\nbreak'],
      // The gateway refuses a record whose user_id breaks the user_id rule (SPEC §5.1).
      ['sessions', 'create', '--user', 'u'.repeat(257)],
      ['sessions', 'create', '--user', 'alice\tbob'],
      ['sessions', 'create', '--user', 'u', '--wait', '2m'],
      ['sessions', 'create', '--user', 'u', '--wait', 'soon'],
      ['sessions', 'show', 'ds-1', '--wait', '1s'],
    ]) {
      const result = await runCli(args, env());
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toContain('Usage: edge-gateway sessions');
    }
  });
});

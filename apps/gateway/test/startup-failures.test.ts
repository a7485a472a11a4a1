import { generateKeyPairSync } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { runCli } from '@edge-gateway/test-utils/entry-process';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';

let redis: RedisServerHandle;
let keyPath: string;
const dir = mkdtempSync(join(tmpdir(), 'eg-startup-'));

beforeAll(async () => {
  redis = await startRedisServer();
  keyPath = writeSignerKey(dir).path;
});
afterAll(async () => {
  await redis?.stop();
});

function baseEnv(): Record<string, string> {
  return gatewayEnv(redis, keyPath, { GATEWAY_REDIS_PING_TIMEOUT: '1s' });
}

/** Runs the binary, expects exit 1 with exactly one `startup failed` line, returns it. */
async function expectStartupFailure(env: Record<string, string>): Promise<{ error: string; gateway: GatewayProcess; ms: number }> {
  const started = Date.now();
  const gateway = new GatewayProcess(env);
  const exit = await gateway.exited;
  const ms = Date.now() - started;
  await gateway.stop();
  expect(exit.code, gateway.raw).toBe(1);
  const failures = gateway.logs.filter((l) => l.message === 'startup failed');
  expect(failures, gateway.raw).toHaveLength(1);
  expect(failures[0]?.level).toBe('error');
  expect(gateway.logs.some((l) => l.message === 'gateway started')).toBe(false);
  return { error: String(failures[0]?.['error']), gateway, ms };
}

describe('startup fails fast (SPEC §8.1)', () => {
  it.each(['GATEWAY_REDIS_TLS_ENABLED', 'GATEWAY_REDIS_USERNAME'])('on the deprecated %s', async (name) => {
    const { error } = await expectStartupFailure({ ...baseEnv(), [name]: 'false' });
    expect(error).toContain(name);
    expect(error).toContain('deprecated');
  });

  it('with both a master address and Sentinels, naming both variables', async () => {
    const { error } = await expectStartupFailure({ ...baseEnv(), GATEWAY_REDIS_SENTINEL_ADDRS: '127.0.0.1:26379', GATEWAY_REDIS_SENTINEL_MASTER_NAME: 'gw' });
    expect(error).toContain('GATEWAY_REDIS_MASTER_ADDR');
    expect(error).toContain('GATEWAY_REDIS_SENTINEL_ADDRS');
  });

  it('when no Sentinel answers, naming each Sentinel, within the ping timeout', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const { error } = await expectStartupFailure({
      ...baseEnv(),
      GATEWAY_REDIS_MASTER_ADDR: '',
      GATEWAY_REDIS_SENTINEL_ADDRS: `127.0.0.1:${a},127.0.0.1:${b}`,
      GATEWAY_REDIS_SENTINEL_MASTER_NAME: 'gw',
      GATEWAY_REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
    });
    expect(error).toContain('redis sentinel discovery failed: no Sentinel named the master "gw"');
    expect(error).toContain(`127.0.0.1:${a}: connect ECONNREFUSED`);
    expect(error).toContain(`127.0.0.1:${b}: connect ECONNREFUSED`);
    expect(error).not.toContain('sentinel-secret');
  });

  it('on an invalid duration, naming the variable', async () => {
    const { error } = await expectStartupFailure({ ...baseEnv(), GATEWAY_SHUTDOWN_TIMEOUT: '15 seconds' });
    expect(error).toMatch(/^GATEWAY_SHUTDOWN_TIMEOUT: /);
  });

  it('on a bad maximum connection age or a grace without one, naming each variable', async () => {
    const { error } = await expectStartupFailure({ ...baseEnv(), GATEWAY_GRPC_MAX_CONNECTION_AGE: '500ms' });
    expect(error).toBe('GATEWAY_GRPC_MAX_CONNECTION_AGE: must be at least 1s (or empty/0: unlimited)');
    const alone = await expectStartupFailure({ ...baseEnv(), GATEWAY_GRPC_MAX_CONNECTION_AGE_GRACE: '30s' });
    expect(alone.error).toBe('GATEWAY_GRPC_MAX_CONNECTION_AGE_GRACE: is set but GATEWAY_GRPC_MAX_CONNECTION_AGE is not (the grace only follows a maximum age)');
  });

  it('on a missing signer key file', async () => {
    const { error } = await expectStartupFailure({
      ...baseEnv(),
      GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: join(dir, 'nope.pem'),
    });
    expect(error).toMatch(/^GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: cannot read .*ENOENT/);
  });

  it('on an unreadable signer key path (a directory)', async () => {
    const { error } = await expectStartupFailure({ ...baseEnv(), GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: dir });
    expect(error).toBe(`GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: ${dir} is not a regular file (directory)`);
  });

  it('on a key file that is not PEM', async () => {
    const path = join(dir, 'garbage.pem');
    writeFileSync(path, 'this is not a key\n');
    const { error } = await expectStartupFailure({ ...baseEnv(), GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: path });
    expect(error).toContain('not a PEM private key');
  });

  it('on a PKCS#8 key that is not Ed25519', async () => {
    const path = join(dir, 'rsa.pem');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(path, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const { error, gateway } = await expectStartupFailure({ ...baseEnv(), GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: path });
    expect(error).toContain('expected ed25519');
    expect(gateway.raw).not.toContain('PRIVATE KEY');
  });

  it('on the wrong Redis password, without logging either password', async () => {
    const { error, gateway } = await expectStartupFailure({ ...baseEnv(), GATEWAY_REDIS_PASSWORD: 'wrong-password-123' });
    expect(error).toMatch(/auth/i);
    expect(gateway.raw).not.toContain('wrong-password-123');
    expect(gateway.raw).not.toContain(redis.password);
  });

  it('on unreachable Redis', async () => {
    const port = await freePort();
    const { error } = await expectStartupFailure({ ...baseEnv(), GATEWAY_REDIS_MASTER_ADDR: `127.0.0.1:${port}` });
    expect(error).toMatch(/unreachable|ECONNREFUSED/);
  });

  it('on a Redis that does not answer, bounded by GATEWAY_REDIS_PING_TIMEOUT', async () => {
    redis.pause();
    try {
      const { error, ms } = await expectStartupFailure({ ...baseEnv(), GATEWAY_REDIS_PING_TIMEOUT: '500ms' });
      expect(error).toMatch(/timed out/);
      expect(ms).toBeLessThan(8_000);
    } finally {
      redis.resume();
    }
  });
});

describe('every configuration problem at once, each naming its variable (issue 16)', () => {
  it('an empty environment lists every required variable in the one startup failed line', async () => {
    const { error, gateway } = await expectStartupFailure({});
    expect(error).toBe(
      'GATEWAY_REDIS_MASTER_ADDR: is required; GATEWAY_REDIS_PASSWORD: is required; GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: is required',
    );
    expect(gateway.logs.find((l) => l.message === 'startup failed')?.['variables']).toEqual([
      'GATEWAY_REDIS_MASTER_ADDR',
      'GATEWAY_REDIS_PASSWORD',
      'GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH',
    ]);
    expect(gateway.logs.filter((l) => l.level === 'raw')).toEqual([]);
  });

  it('GATEWAY_DOWNSTREAM_ROUTES=echo names the variable', async () => {
    const { error } = await expectStartupFailure({ ...baseEnv(), GATEWAY_DOWNSTREAM_ROUTES: 'echo' });
    expect(error).toBe('GATEWAY_DOWNSTREAM_ROUTES: invalid route "echo": expected prefix=host:port or prefix=tls://host:port');
  });

  it('a malformed GATEWAY_RATE_LIMITS rule names the variable and the rule', async () => {
    const { error } = await expectStartupFailure({ ...baseEnv(), GATEWAY_RATE_LIMITS: 'session=20/s,user=5/week' });
    expect(error).toBe('GATEWAY_RATE_LIMITS: rule "user=5/week": the unit must be s, m or h');
  });

  it.each(['GATEWAY_AUTHENTICATED_GRPC_ADDR', 'GATEWAY_PUBLIC_HTTP_ADDR', 'GATEWAY_ADMIN_HTTP_ADDR'])(
    'a taken port of %s names the variable, and every line printed is JSON',
    async (variable) => {
      const taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      const address = `127.0.0.1:${(taken.address() as AddressInfo).port}`;
      try {
        const { error, gateway } = await expectStartupFailure({ ...baseEnv(), [variable]: address });
        expect(error).toBe(`${variable}: cannot listen on ${address}: address already in use (EADDRINUSE)`);
        for (const line of gateway.raw.split('\n').filter((l) => l.trim() !== '')) expect(() => JSON.parse(line), line).not.toThrow();
      } finally {
        taken.close();
      }
    },
  );

  it('doctor shows every problem of an empty environment, one line per variable', async () => {
    const result = await runCli(['doctor'], {});
    for (const variable of ['GATEWAY_REDIS_MASTER_ADDR', 'GATEWAY_REDIS_PASSWORD', 'GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH']) {
      expect(result.stdout).toContain(`config: ${variable}: is required`);
    }
  });
});

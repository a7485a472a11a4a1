import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ed25519ResponseSigner, keyId } from '@edge-gateway/core';
import { GatewayClient, RateLimitedError } from '@edge-gateway/client';
import { DEMO_STEPS } from '../src/demo-tour.js';
import { DEMO, DEV, LineProcess, runScript } from '@edge-gateway/test-utils/entry-process';
import { localize, scrape } from '@edge-gateway/test-utils/gateway-process';

const DEV_WARNING = 'development mode: in-memory stores, nothing is kept; never use in production';

let devDir: string;
let dev: LineProcess;
let addresses: { publicHttp: string; grpc: string; admin: string };

function address(message: string): string {
  const line = dev.logs.find((l) => l['message'] === message);
  return localize(String(line?.['address'] ?? ''));
}

beforeAll(async () => {
  devDir = mkdtempSync(join(tmpdir(), 'eg-dev-'));
  // No GATEWAY_REDIS_* at all: the development mode must not need (or touch) Redis.
  dev = new LineProcess(DEV, [], {
    GATEWAY_DEV_DIR: devDir,
    GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
    GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
    // Only `echo.limited.` is limited (the demo tour's echo.ping is not); `redis` cannot apply
    // without Redis: the development mode counts in the process.
    GATEWAY_RATE_LIMITS: 'session:echo.limited.=1/m',
    GATEWAY_RATE_LIMIT_STORE: 'redis',
  });
  await dev.waitForLog('gateway started', 20_000);
  addresses = {
    publicHttp: address('public http listener started'),
    grpc: address('authenticated grpc listener started'),
    admin: address('admin http listener started'),
  };
});

afterAll(async () => {
  await dev?.stop();
});

describe('npm run dev', () => {
  it('warns first that it is a development mode that keeps nothing, and never touches Redis', () => {
    const logs = dev.logs;
    expect(logs[0]).toMatchObject({ level: 'warn', message: DEV_WARNING });
    expect(logs.find((l) => l['message'] === 'starting gateway')).toMatchObject({ redis_master_addr: 'in-memory:0' });
    const messages = logs.map((l) => String(l['message']));
    expect(messages).not.toContain('redis connected');
    expect(messages.filter((m) => /redis/i.test(m))).toEqual([]);
    expect(dev.stderr).toBe('');
  });

  it('writes a fresh signer key, its public key and the demo-device key to the dev folder (keys 0600)', () => {
    const started = dev.logs.find((l) => l['message'] === 'gateway started');
    const signer = Ed25519ResponseSigner.fromPem(readFileSync(join(devDir, 'signer.pem')));
    const publicKey = Buffer.from(readFileSync(join(devDir, 'gateway-public-key.b64'), 'utf8').trim(), 'base64');
    expect(publicKey.equals(Buffer.from(signer.publicKey))).toBe(true);
    expect(keyId(publicKey)).toBe(started?.['signer_key_id']);
    expect(statSync(join(devDir, 'signer.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(devDir, 'demo-device.pem')).mode & 0o777).toBe(0o600);
  });

  it('applies GATEWAY_RATE_LIMITS, counted in the process', async () => {
    expect(dev.logs.find((l) => l['message'] === 'starting gateway')).toMatchObject({ rate_limits: 'session:echo.limited.=1/m:1', rate_limit_store: 'local' });
    const client = new GatewayClient({
      address: addresses.grpc,
      deviceSessionId: 'demo-device',
      userId: 'demo-user',
      privateKey: createPrivateKey(readFileSync(join(devDir, 'demo-device.pem'), 'utf8')),
      gatewayPublicKeys: [Buffer.from(readFileSync(join(devDir, 'gateway-public-key.b64'), 'utf8').trim(), 'base64')],
    });
    try {
      expect((await client.execute('echo.limited.first', Buffer.from('a'), { timeoutMs: 5000 })).resultCode).toBe('ok');
      const refused: unknown = await client.execute('echo.limited.second', Buffer.from('b'), { timeoutMs: 5000 }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(RateLimitedError);
      // 1/m: the next request passes a minute after the first (less the time since).
      expect((refused as RateLimitedError).retryAfterMs).toBeGreaterThan(50_000);
      expect((refused as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(60_000);
      // Other routes draw from no bucket.
      expect((await client.execute('echo.ping', Buffer.from('c'), { timeoutMs: 5000 })).resultCode).toBe('ok');
      expect(await scrape(addresses.admin, 'gateway_rate_limited_total', { scope: 'session', route: 'echo.limited.' })).toBe(1);
    } finally {
      client.close();
    }
  });

  it('serves the public probes and /metrics next to the dev routes on the admin listener', async () => {
    expect(await (await fetch(`http://${addresses.publicHttp}/readyz`)).json()).toEqual({ status: 'ready' });
    const metrics = await fetch(`http://${addresses.admin}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('gateway_http_requests_total');

    const unknown = await fetch(`http://${addresses.admin}/dev/sessions/nobody`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: { code: 'not_found', message: 'no session record for nobody' } });

    const demo = await fetch(`http://${addresses.admin}/dev/sessions/demo-device`);
    expect(await demo.json()).toMatchObject({ record: { user_id: 'demo-user', status: 'active' }, well_formed: true });

    const malformed = await fetch(`http://${addresses.admin}/dev/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user_id: 'demo-user', event_type: 'gateway.fake', payload_base64: '' }),
    });
    expect(malformed.status).toBe(201);
    expect(await malformed.json()).toMatchObject({ well_formed: false, reason: 'event_type uses the reserved gateway. prefix' });
    await dev.waitForLine((l) => l.includes('malformed') && l.includes('gateway. prefix'));

    const notJson = await fetch(`http://${addresses.admin}/dev/sessions`, { method: 'POST', body: 'x' });
    expect(notJson.status).toBe(415);
  });
});

describe('npm run dev, second start', () => {
  it('logs the admin address the development mode really serves, not ""', () => {
    const bound = dev.logs.find((l) => l['message'] === 'admin http listener started')?.['address'];
    expect(bound).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(dev.logs.find((l) => l['message'] === 'starting gateway')).toMatchObject({ admin_http_addr: bound });
    expect(dev.logs.find((l) => l['message'] === 'gateway started')).toMatchObject({ admin_http_addr: bound });
  });

  it('fails on the busy port, naming the variable, before it touches the keys of the running one', async () => {
    const files = ['signer.pem', 'gateway-public-key.b64', 'demo-device.pem', 'dev-gateway.json'];
    const before = files.map((f) => readFileSync(join(devDir, f), 'utf8'));
    const second = await runScript(DEV, [], {
      GATEWAY_DEV_DIR: devDir,
      GATEWAY_PUBLIC_HTTP_ADDR: addresses.publicHttp,
      GATEWAY_AUTHENTICATED_GRPC_ADDR: addresses.grpc,
      GATEWAY_ADMIN_HTTP_ADDR: addresses.admin,
    });
    expect(second.code).toBe(1);
    const failed = second.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['message'] === 'startup failed');
    const port = addresses.publicHttp.split(':').at(-1);
    expect(String(failed?.['error'])).toBe(
      `GATEWAY_PUBLIC_HTTP_ADDR: ${addresses.publicHttp}: port ${port} is in use here (the development gateway pid ${String(
        JSON.parse(before[3] as string).pid,
      )} runs with this folder); nothing in ${devDir} was changed`,
    );
    expect(files.map((f) => readFileSync(join(devDir, f), 'utf8'))).toEqual(before);
    expect(dev.running).toBe(true);
  });
});

describe('npm run demo', () => {
  it('passes every step against the dev gateway on non-default ports', async () => {
    const result = await runScript(DEMO, [], {
      GATEWAY_DEV_DIR: devDir,
      GATEWAY_DEMO_GRPC_ADDR: addresses.grpc,
      GATEWAY_DEMO_ADMIN_URL: `http://${addresses.admin}`,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    DEMO_STEPS.forEach((step, index) => {
      expect(result.lines.some((l) => l.startsWith(`✓ ${index + 1}/${DEMO_STEPS.length} ${step}: `)), step).toBe(true);
    });
    expect(result.lines.some((l) => l.startsWith('✗'))).toBe(false);
    expect(result.stdout).toContain('gateway.server_time for demo-user/demo-device');
    expect(result.stdout).toContain('the stream closed with FAILED_PRECONDITION "device session is revoked"');
    expect(result.lines.at(-1)).toBe(`all ${DEMO_STEPS.length} steps passed`);
    // The tour revoked demo-device; it leaves it active for the /demo page opened next.
    expect(result.lines).toContain('demo-device is active again (for the /demo page)');
    const record = (await (await fetch(`http://${addresses.admin}/dev/sessions/demo-device`)).json()) as { record: Record<string, string> };
    expect(record.record['status']).toBe('active');
  });

  it('runs again (it re-activates the demo session) and finds the gateway through the dev folder', async () => {
    const result = await runScript(DEMO, [], { GATEWAY_DEV_DIR: devDir });
    expect(result.code).toBe(0);
    expect(result.lines[0]).toBe(`edge-gateway demo against grpc ${addresses.grpc}, dev routes http://${addresses.admin}`);
  });

  it('fails with ✗ and exit 1 when there is no dev gateway', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'eg-dev-empty-'));
    const result = await runScript(DEMO, [], { GATEWAY_DEV_DIR: empty });
    expect(result.code).toBe(1);
    expect(result.lines.some((l) => l.startsWith(`✗ 1/${DEMO_STEPS.length} ${DEMO_STEPS[0]}: cannot read the keys`))).toBe(true);
    expect(result.lines.filter((l) => l.endsWith(': skipped'))).toHaveLength(DEMO_STEPS.length - 1);
  });
});

describe('dev shutdown', () => {
  it('stops cleanly on SIGTERM and removes its running-gateway file', async () => {
    expect(existsSync(join(devDir, 'dev-gateway.json'))).toBe(true);
    dev.signal('SIGTERM');
    expect((await dev.exited).code).toBe(0);
    expect(dev.logs.find((l) => l['message'] === 'gateway stopped')).toMatchObject({ clean: true });
    expect(existsSync(join(devDir, 'dev-gateway.json'))).toBe(false);
  });
});

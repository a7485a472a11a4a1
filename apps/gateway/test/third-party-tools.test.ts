/**
 * The built binary as real third-party tools see it (issue 16): `buf curl` (Go, the same
 * descriptor rules as grpcurl) through server reflection, and the runbook's `jq` checks on the
 * logs of the documented production start.
 */
import { execFile } from 'node:child_process';
import { sign, verify, randomUUID, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandRequestBytes, commandResultBytes } from '@edge-gateway/client';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, MAIN, REPO_ROOT, SHUTDOWN_ORDER, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { EchoDownstream, connectRedis, newDevice, writeSession, type RawRedis } from '@edge-gateway/test-utils/system-support';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const BUF = join(dirname(require.resolve('@bufbuild/buf/package.json')), 'bin', 'buf');

let redis: RedisServerHandle;
let raw: RawRedis;
let downstream: EchoDownstream;
let signer: ReturnType<typeof writeSignerKey>;
let gateway: GatewayProcess;
let grpcAddress: string;

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  downstream = await new EchoDownstream().start();
  signer = writeSignerKey();
  gateway = new GatewayProcess(gatewayEnv(redis, signer.path, { GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}` }));
  grpcAddress = (await gateway.started()).grpc;
});

afterAll(async () => {
  await gateway?.stop();
  downstream?.stop();
  await raw?.quit();
  await redis?.stop();
});

/** `buf curl` over plaintext HTTP/2 with the schema taken from server reflection only. */
async function bufCurl(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', '--reflect', ...args], { timeout: 20_000 });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; code?: number };
    return { stdout: failed.stdout ?? '', stderr: failed.stderr ?? '', code: typeof failed.code === 'number' ? failed.code : -1 };
  }
}

describe('buf curl through server reflection', () => {
  it('lists every served service', async () => {
    const listed = await bufCurl(['--list-services', `http://${grpcAddress}`]);
    expect(listed.stderr).toBe('');
    expect(listed.stdout.trim().split('\n').sort()).toEqual(['edgegateway.v1.EdgeGateway', 'grpc.health.v1.Health']);
  });

  it('calls grpc.health.v1.Health/Check and List (the health file has a map field)', async () => {
    const overall = await bufCurl([`http://${grpcAddress}/grpc.health.v1.Health/Check`]);
    expect(overall.stderr).toBe('');
    expect(JSON.parse(overall.stdout)).toEqual({ status: 'SERVING' });
    const service = await bufCurl(['-d', '{"service":"edgegateway.v1.EdgeGateway"}', `http://${grpcAddress}/grpc.health.v1.Health/Check`]);
    expect(JSON.parse(service.stdout)).toEqual({ status: 'SERVING' });
    const list = await bufCurl([`http://${grpcAddress}/grpc.health.v1.Health/List`]);
    expect(JSON.parse(list.stdout)).toEqual({
      statuses: { '': { status: 'SERVING' }, 'edgegateway.v1.EdgeGateway': { status: 'SERVING' } },
    });
  });

  it('runs a signed ExecuteCommand whose response verifies', async () => {
    const device = newDevice('buf-user');
    await writeSession(raw, device, 'active');
    const fields = {
      deviceSessionId: device.deviceSessionId,
      messageType: 'echo.buf',
      requestId: randomUUID(),
      timestampMs: Date.now(),
      payload: Buffer.from('from buf curl'),
    };
    const signature = sign(null, commandRequestBytes(fields), device.privateKey);
    const body = JSON.stringify({
      device_session_id: fields.deviceSessionId,
      message_type: fields.messageType,
      request_id: fields.requestId,
      timestamp_ms: String(fields.timestampMs),
      payload: fields.payload.toString('base64'),
      signature: signature.toString('base64'),
    });
    const answer = await bufCurl(['-d', body, `http://${grpcAddress}/edgegateway.v1.EdgeGateway/ExecuteCommand`]);
    expect(answer.stderr).toBe('');
    const response = JSON.parse(answer.stdout) as Record<string, string>;
    expect(response['requestId']).toBe(fields.requestId);
    expect(response['resultCode']).toBe('ok');
    expect(Buffer.from(response['payload'] ?? '', 'base64').toString()).toBe('from buf curl');
    const signed = commandResultBytes({
      requestId: fields.requestId,
      resultCode: 'ok',
      timestampMs: Number(response['timestampMs']),
      payload: Buffer.from(response['payload'] ?? '', 'base64'),
    });
    const gatewayKey = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), signer.publicKeyRaw]), format: 'der', type: 'spki' });
    expect(verify(null, signed, gatewayKey, Buffer.from(response['signature'] ?? '', 'base64'))).toBe(true);
  });

  it('reports the gateway status of a bad SubscribeEvents request (schema resolved)', async () => {
    const answer = await bufCurl(['-d', '{"device_session_id":"x"}', `http://${grpcAddress}/edgegateway.v1.EdgeGateway/SubscribeEvents`]);
    expect(answer.code).not.toBe(0);
    expect(JSON.parse(answer.stderr)).toEqual({ code: 'invalid_argument', message: 'request_id: must be 1-128 characters of [A-Za-z0-9._:-]' });
  });
});

/** The lines of the fenced `sh` blocks of a markdown file. */
function shellLines(markdownPath: string): string[] {
  const text = readFileSync(join(REPO_ROOT, markdownPath), 'utf8');
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((block) => (block[1] ?? '').split('\n')).map((l) => l.trim());
}

describe('the documented production start', () => {
  it('is node itself, which drains on SIGTERM and logs JSON only; the runbook jq checks work on its log', async () => {
    // The README's start command: env assignments on the lines before, then the command.
    const start = shellLines('README.md').filter((l) => /^(exec )?node \S*main\.js$/.test(l));
    expect(start).toEqual(['node apps/gateway/dist/main.js']);
    expect(resolve(REPO_ROOT, (start[0] ?? '').split(' ')[1] ?? '')).toBe(MAIN);

    // Spawned as documented (no npm, no shell): the signalled PID is the gateway.
    const production = new GatewayProcess(gatewayEnv(redis, signer.path, { GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0' }));
    try {
      await production.started();
      production.signal('SIGTERM');
      expect(await production.exited).toEqual({ code: 0, signal: null });
      expect(production.logs.filter((l) => l.message === 'component stopped').map((l) => l.component)).toEqual(SHUTDOWN_ORDER);
      expect(production.logs.filter((l) => l.level === 'raw')).toEqual([]);
    } finally {
      await production.stop();
    }

    const log = join(mkdtempSync(join(tmpdir(), 'eg-runbook-')), 'gateway.log');
    writeFileSync(log, production.raw);
    const filters = shellLines('docs/runbook.md')
      .map((l) => /^jq -c '(.+)' gateway\.log$/.exec(l)?.[1])
      .filter((f): f is string => f !== undefined);
    expect(filters.length).toBeGreaterThanOrEqual(2);
    const results = await Promise.all(filters.map(async (filter) => (await run('jq', ['-c', filter, log])).stdout));
    const listeners = (results[0] ?? '').trim().split('\n').map((l) => JSON.parse(l) as { message: string; address: string });
    expect(listeners.map((l) => l.message)).toEqual(['public http listener started', 'authenticated grpc listener started', 'admin http listener started']);
    for (const listener of listeners) expect(listener.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(JSON.parse(results[1] ?? '')).toMatchObject({ message: 'starting gateway', redis_master_addr: `127.0.0.1:${redis.port}` });
  });
});

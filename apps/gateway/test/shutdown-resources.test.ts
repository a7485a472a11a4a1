/**
 * After the shutdown sequence nothing of the gateway keeps a process alive (issue 16: the
 * production gateway lingered after `gateway stopped`). Asserted through the event loop
 * emptying by itself, not through how fast the binary exits.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { REPO_ROOT, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';

const FIXTURE = join(REPO_ROOT, 'apps/gateway/test/fixtures/shutdown-resources.mjs');

let redis: RedisServerHandle;
const signer = writeSignerKey();

beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.stop();
});

function runFixture(mode: string): Promise<{ code: number | null; report: Record<string, unknown> | undefined; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FIXTURE, mode], {
      env: { PATH: process.env['PATH'] ?? '', ...gatewayEnv(redis, signer.path, { GATEWAY_LOG_LEVEL: 'error' }) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('exit', (code) => {
      const line = stderr.split('\n').find((l) => l.startsWith('{"clean"'));
      resolve({ code, report: line === undefined ? undefined : (JSON.parse(line) as Record<string, unknown>), stderr });
    });
  });
}

describe('shutdown leaves nothing running', () => {
  it.each(['right-after-start', 'after-request'])('the event loop empties by itself after a shutdown %s', async (mode) => {
    const { code, report, stderr } = await runFixture(mode);
    expect(report, stderr).toEqual({ clean: true, drained: true });
    expect(code).toBe(0);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { CLI, runCli } from '@edge-gateway/test-utils/entry-process';
import { REPO_ROOT } from '@edge-gateway/test-utils/gateway-process';
import { connectRedis, type RawRedis } from '@edge-gateway/test-utils/system-support';

let redis: RedisServerHandle;
let raw: RawRedis;

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'apps/cli/package.json'), 'utf8')) as { version: string }).version;

/** Runs a shell pipeline; fails the test if it has not finished within `timeoutMs`. */
function pipeline(command: string, env: Record<string, string>, timeoutMs = 15_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { env: { PATH: process.env['PATH'] ?? '', ...env }, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pipeline still running after ${timeoutMs} ms: ${command}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function redisEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { GATEWAY_REDIS_MASTER_ADDR: `127.0.0.1:${redis.port}`, GATEWAY_REDIS_PASSWORD: redis.password, ...extra };
}

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
});

afterAll(async () => {
  await raw?.quit();
  await redis?.stop();
});

describe('edge-gateway --version and the bin link', () => {
  it('prints the package version', async () => {
    for (const flag of ['--version', '-V']) {
      const result = await runCli([flag], {});
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`edge-gateway ${VERSION}\n`);
    }
  });

  it('is linked as node_modules/.bin/edge-gateway by the install, so `npx edge-gateway` works in a checkout', async () => {
    // The bin file exists before any build (a committed launcher), which is what lets npm link it.
    const bin = join(REPO_ROOT, 'node_modules/.bin/edge-gateway');
    expect(realpathSync(bin)).toBe(join(REPO_ROOT, 'apps/cli/bin/edge-gateway.js'));
    const result = await pipeline('npx --no-install edge-gateway --version', {});
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`edge-gateway ${VERSION}\n`);
    expect(result.code).toBe(0);
  });
});

describe('edge-gateway output into a closed pipe', () => {
  it('stops quietly when the reader goes away mid-output (no EPIPE stack)', async () => {
    // Enough entries that the output outgrows the pipe buffer after `head` has exited.
    const stream = 'pipes:many';
    const batch = raw.multi();
    for (let i = 0; i < 3000; i += 1) batch.xAdd(stream, '*', { user_id: 'u', event_type: 'pipe.test', payload_base64: 'aGk=' });
    await batch.exec();
    const result = await pipeline(`node ${CLI} streams tail client-events --from-start | head -2`, redisEnv({ GATEWAY_CLIENT_EVENTS_REDIS_STREAM: stream }));
    expect(result.stderr).toBe('');
    expect(result.stdout.split('\n')).toHaveLength(3);
    expect(result.stdout).toMatch(/^watching pipes:many \(client-events\) after 0-0; Ctrl-C stops\n✓ \d+-\d+ user_id=u /);
  });

  it('`streams tail | head -1` exits once head has its line, even while the stream stays quiet', async () => {
    const result = await pipeline(`node ${CLI} streams tail client-events | head -1; echo "tail exit $?" >&2`, redisEnv({ GATEWAY_CLIENT_EVENTS_REDIS_STREAM: 'pipes:quiet' }));
    expect(result.stdout).toBe('watching pipes:quiet (client-events) after 0-0; Ctrl-C stops\n');
    expect(result.stderr).toBe('tail exit 0\n');
  });
});

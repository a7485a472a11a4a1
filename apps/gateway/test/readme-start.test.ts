import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, REPO_ROOT } from '@edge-gateway/test-utils/gateway-process';

// The README's "Two commands" start example, copied as an operator would.
const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const START_BLOCK = /```sh\n(npm run build\n[\s\S]*?)```/.exec(README)?.[1] ?? '';
const ASSIGNMENTS = Object.fromEntries([...START_BLOCK.matchAll(/^(GATEWAY_[A-Z_]+)=(\S+) \\$/gm)].map((m) => [m[1] as string, m[2] as string]));
const SETUP_LINES = START_BLOCK.split('\n').filter((l) => /^(mkdir|npx edge-gateway keygen)/.test(l));

let redis: RedisServerHandle;
let home: string;

beforeAll(async () => {
  redis = await startRedisServer();
  home = mkdtempSync(join(tmpdir(), 'eg-readme-home-'));
});

afterAll(async () => {
  await redis?.stop();
});

describe("README's start example", () => {
  it('makes the signer key outside the checkout with its own commands (0600)', () => {
    expect(SETUP_LINES).toHaveLength(2);
    execFileSync('sh', ['-ec', SETUP_LINES.join('\n')], { cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: home }, stdio: 'pipe' });
    const path = ASSIGNMENTS['GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH']?.replace('$HOME', home) ?? '';
    expect(path.startsWith(home)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('keeps key files out of git: *.pem is ignored in the checkout', () => {
    const ignored = execFileSync('git', ['check-ignore', 'signer.pem', 'apps/gateway/device.pem'], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(ignored.split('\n').filter((l) => l !== '')).toEqual(['signer.pem', 'apps/gateway/device.pem']);
  });

  it('enables the admin listener that readiness step 4 curls, and /metrics answers there', async () => {
    const admin = ASSIGNMENTS['GATEWAY_ADMIN_HTTP_ADDR'];
    expect(admin).toBeDefined();
    const step4 = /^4\. .*`curl -fsS localhost:(\d+)\/metrics`/m.exec(README);
    expect(step4?.[1]).toBe(admin?.split(':').at(-1));

    // The example's variables as written; only Redis is the test's, and the listeners use free
    // ports so the test does not depend on 8080/9090/9100 being free on this machine.
    const gateway = new GatewayProcess({
      ...ASSIGNMENTS,
      GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: ASSIGNMENTS['GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH']?.replace('$HOME', home),
      GATEWAY_REDIS_MASTER_ADDR: `127.0.0.1:${redis.port}`,
      GATEWAY_REDIS_PASSWORD: redis.password,
      GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
      GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
      GATEWAY_ADMIN_HTTP_ADDR: `${admin?.slice(0, admin.lastIndexOf(':'))}:0`,
    });
    try {
      const { adminHttp } = await gateway.started();
      const metrics = await fetch(`http://${adminHttp}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toMatch(/^gateway_push_resumes_incomplete_total\{reason="truncated",[^}]*\} 0$/m);
    } finally {
      await gateway.stop();
    }
  });
});

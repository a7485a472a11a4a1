import { pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { MAIN, localize, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';

let redis: RedisServerHandle;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.stop();
});

it('keeps serving when its log pipe is closed (EPIPE is not fatal)', async () => {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env['PATH'] ?? '',
      GATEWAY_REDIS_MASTER_ADDR: `127.0.0.1:${redis.port}`,
      GATEWAY_REDIS_PASSWORD: redis.password,
      GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: writeSignerKey().path,
      GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
      GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
      GATEWAY_LOG_LEVEL: 'debug',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const publicAddress = await new Promise<string>((resolve, reject) => {
      let buffer = '';
      child.once('exit', () => reject(new Error('gateway exited during startup')));
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        const match = /"address":"([^"]+)","component":"gateway","level":"info","message":"public http listener started"/.exec(buffer)
          ?? /"message":"public http listener started"[^\n]*"address":"([^"]+)"/.exec(buffer);
        if (match !== null && buffer.includes('"gateway started"')) resolve(localize(match[1] as string));
      });
    });
    child.stdout.destroy();
    // Every request below logs at debug into the closed pipe.
    for (let i = 0; i < 20; i += 1) {
      const res = await fetch(`http://${publicAddress}/healthz`);
      expect(res.status).toBe(200);
    }
    expect(child.exitCode).toBeNull();
  } finally {
    child.kill('SIGKILL');
  }
});

it('writes log lines still pending when the process exits in the same turn (the built logger)', async () => {
  const { spawnSync } = await import('node:child_process');
  const logging = new URL('../../../packages/node-runtime/dist/logging.js', pathToFileURL(MAIN)).href;
  // Logs and exits in the same turn: without the exit hook the batched line would be lost.
  const script = `
    import { WinstonLogger, createWinstonLogger } from ${JSON.stringify(logging)};
    new WinstonLogger(createWinstonLogger('info')).error('last line before exit', { code: 7 });
    process.exit(3);
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(child.status).toBe(3);
  const lines = child.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(lines).toEqual([expect.objectContaining({ level: 'error', message: 'last line before exit', code: 7 })]);
});

import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { EchoDownstream, clientFor, connectRedis, newDevice, writeSession, type RawRedis } from '@edge-gateway/test-utils/system-support';

interface ExportedSpan {
  readonly traceId: string;
  readonly name: string;
}

/** A minimal OTLP/HTTP (JSON) trace collector on loopback. */
class Collector {
  readonly spans: ExportedSpan[] = [];
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: ExportedSpan[] }> }>;
        };
        for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) this.spans.push(...(ss.spans ?? []));
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  port = 0;

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  stop(): void {
    this.server.close();
  }
}

let redis: RedisServerHandle;
let raw: RawRedis;
let downstream: EchoDownstream;
let collector: Collector;
const signer = writeSignerKey();

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  downstream = await new EchoDownstream().start();
  collector = await new Collector().start();
});
afterAll(async () => {
  collector?.stop();
  downstream?.stop();
  await raw?.quit();
  await redis?.stop();
});

describe('tracing (SPEC §7, §8.5)', () => {
  it('exports spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and logs carry their trace_id', async () => {
    const gateway = new GatewayProcess(
      gatewayEnv(redis, signer.path, {
        GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}`,
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.port}`,
        OTEL_SERVICE_NAME: 'edge-gateway-test',
      }),
    );
    try {
      const { grpc } = await gateway.started();
      const device = newDevice('user-traced');
      await writeSession(raw, device, 'active');
      const client = clientFor(device, grpc, signer.publicKeyRaw);
      await client.execute('echo.ping', Buffer.from('x'), { requestId: 'traced-1' });
      client.close();

      const line = await gateway.waitForLog((l) => l.message === 'command' && l['request_id'] === 'traced-1');
      expect(line['trace_id']).toMatch(/^[0-9a-f]{32}$/);
      // The downstream received the same trace in its traceparent.
      const seen = downstream.calls.find((c) => c.command.requestId === 'traced-1');
      expect(String(seen?.metadata['traceparent'])).toContain(String(line['trace_id']));

      gateway.signal('SIGTERM');
      expect((await gateway.exited).code).toBe(0);
      // Shutdown flushes the batch processor.
      await waitFor(() => collector.spans.some((s) => s.name === 'edgegateway.v1.EdgeGateway/ExecuteCommand'), { timeoutMs: 5000 });
      const span = collector.spans.find((s) => s.name === 'edgegateway.v1.EdgeGateway/ExecuteCommand');
      expect(span?.traceId).toBe(line['trace_id']);
      // The replay reservation is traced by @opentelemetry/instrumentation-redis inside the call.
      const names = collector.spans.filter((s) => s.traceId === line['trace_id']).map((s) => s.name);
      expect(names).toContain('redis-SET');
    } finally {
      await gateway.stop();
    }
  });

  it('exports nothing and logs no trace_id without an OTLP endpoint', async () => {
    const before = collector.spans.length;
    const gateway = new GatewayProcess(gatewayEnv(redis, signer.path, { GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}` }));
    try {
      const { grpc } = await gateway.started();
      const device = newDevice('user-untraced');
      await writeSession(raw, device, 'active');
      const client = clientFor(device, grpc, signer.publicKeyRaw);
      await client.execute('echo.ping', Buffer.from('x'), { requestId: 'untraced-1' });
      client.close();
      const line = await gateway.waitForLog((l) => l.message === 'command' && l['request_id'] === 'untraced-1');
      expect(line['trace_id']).toBeUndefined();
      gateway.signal('SIGTERM');
      expect((await gateway.exited).code).toBe(0);
      expect(collector.spans.length).toBe(before);
    } finally {
      await gateway.stop();
    }
  });
});

/** A TCP server that accepts connections and never answers (a hung collector). */
async function silentServer(): Promise<{ port: number; connections: () => number; stop: () => void }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createTcpServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => accepted,
    stop: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

describe('shutdown with an unreachable OTLP collector (SPEC §8.2)', () => {
  it.each([
    ['a closed port (bound, then closed)', 'closed'],
    ['a server that accepts and never answers', 'silent'],
  ] as const)('%s: SIGTERM still ends with gateway stopped and exit 0; the lost flush is a warn line', async (_label, kind) => {
    const silent = kind === 'silent' ? await silentServer() : undefined;
    const port = silent?.port ?? (await freePort());
    const gateway = new GatewayProcess(
      gatewayEnv(redis, signer.path, {
        GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}`,
        GATEWAY_SHUTDOWN_TIMEOUT: '5s',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      }),
    );
    try {
      const { grpc } = await gateway.started();
      // A traced command, so the batch processor holds spans the shutdown must try to flush.
      const device = newDevice(`user-otlp-${kind}`);
      await writeSession(raw, device, 'active');
      const client = clientFor(device, grpc, signer.publicKeyRaw);
      await client.execute('echo.ping', Buffer.from('x'), { requestId: `otlp-${kind}` });
      client.close();
      const command = await gateway.waitForLog((l) => l.message === 'command' && l['request_id'] === `otlp-${kind}`);
      expect(command['trace_id']).toMatch(/^[0-9a-f]{32}$/);

      gateway.signal('SIGTERM');
      expect((await gateway.exited).code).toBe(0);
      const warn = gateway.logs.filter((l) => l.message === 'telemetry not flushed');
      expect(warn[0]).toMatchObject({ component: 'telemetry', timeout_ms: 2000 });
      expect(warn).toHaveLength(1);
      expect(warn[0]?.level).toBe('warn');
      // The telemetry step itself stopped within its budget (no `component stop failed`).
      expect(gateway.logs.filter((l) => l.message === 'component stop failed')).toEqual([]);
      expect(gateway.logs.find((l) => l.message === 'component stopped' && l.component === 'telemetry')).toBeDefined();
      expect(gateway.logs.at(-1)).toMatchObject({ message: 'gateway stopped', clean: true });
      if (silent !== undefined) expect(silent.connections()).toBeGreaterThan(0);
    } finally {
      await gateway.stop();
      silent?.stop();
    }
  });
});

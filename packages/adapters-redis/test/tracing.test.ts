import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { RedisInstrumentation } from '@opentelemetry/instrumentation-redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAndPing, RedisSessionStore, type RedisClient } from '../src/index.js';
import { redisInstrumentation } from '../src/redis-instrumentation.js';
import { clientFor, unique } from './helpers.js';

let server: RedisServerHandle;
let client: RedisClient;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  server = await startRedisServer();
  client = clientFor(server);
  await connectAndPing(client, 5000);
});
afterAll(async () => {
  client?.destroy();
  await server?.stop();
  trace.disable();
});

describe('tracing', () => {
  it('records a client span "redis <COMMAND>" with db.system=redis when node-redis is not patched', async () => {
    exporter.reset();
    await new RedisSessionStore(client, { keyPrefix: 'p:' }).getRecord(unique('ds'));
    const spans = exporter.getFinishedSpans().filter((s) => s.name === 'redis HGETALL');
    expect(spans).toHaveLength(1);
    expect(spans[0]?.attributes).toMatchObject({ 'db.system': 'redis', 'server.address': '127.0.0.1', 'server.port': server.port });
    // Arguments (keys, passwords) are not recorded.
    expect(JSON.stringify(spans[0]?.attributes)).not.toContain('p:session');
  });

  it('redisInstrumentation() returns a RedisInstrumentation that only traces inside a parent span', () => {
    const instrumentation = redisInstrumentation();
    expect(instrumentation).toBeInstanceOf(RedisInstrumentation);
    expect(instrumentation.getConfig()).toMatchObject({ requireParentSpan: true });
    expect(redisInstrumentation({ requireParentSpan: false }).getConfig()).toMatchObject({ requireParentSpan: false });
  });
});

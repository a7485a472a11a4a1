import { describe, expect, it } from 'vitest';
import type { Attributes, Meter } from '@opentelemetry/api';
import { MeterProvider, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { GatewayMetrics, MetricNames } from './metrics.js';
import { MAX_LABEL_SETS_PER_TRANSPORT, MAX_TRANSPORTS } from './transport-metrics.js';

class CollectingReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * A real SDK meter whose counters and histograms also remember the attribute objects they were
 * handed (to see that recording reuses one object per label set).
 */
function sdkMeter(): { meter: Meter; reader: CollectingReader; attributesSeen: Map<string, Attributes[]> } {
  const reader = new CollectingReader();
  const real = new MeterProvider({ readers: [reader] }).getMeter('test');
  const attributesSeen = new Map<string, Attributes[]>();
  const seen = (name: string, attributes: Attributes | undefined) => {
    if (attributes !== undefined) attributesSeen.set(name, [...(attributesSeen.get(name) ?? []), attributes]);
  };
  const meter = new Proxy(real, {
    get(target, property, receiver) {
      if (property === 'createCounter') {
        return (name: string, options?: object) => {
          const counter = target.createCounter(name, options);
          return { add: (value: number, attributes?: Attributes) => (seen(name, attributes), counter.add(value, attributes)) };
        };
      }
      if (property === 'createHistogram') {
        return (name: string, options?: object) => {
          const histogram = target.createHistogram(name, options);
          return { record: (value: number, attributes?: Attributes) => (seen(name, attributes), histogram.record(value, attributes)) };
        };
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
  return { meter, reader, attributesSeen };
}

async function collect(reader: CollectingReader): Promise<Map<string, MetricData>> {
  const { resourceMetrics } = await reader.collect();
  return new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).map((m) => [m.descriptor.name, m]));
}

/** `[attributes, value]` of every point (histograms: `{count, sum}`), sorted. */
function pointsOf(metric: MetricData | undefined): Array<[Attributes, unknown]> {
  return (metric?.dataPoints ?? [])
    .map((p): [Attributes, unknown] => {
      const value = p.value as number | { count: number; sum: number };
      return [p.attributes, typeof value === 'number' ? value : { count: value.count, sum: value.sum }];
    })
    .sort(([a], [b]) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

describe('GatewayMetrics', () => {
  it('exports every labelled resume-incomplete series at 0 from the start (no record needed)', async () => {
    const reader = new CollectingReader();
    const provider = new MeterProvider({ readers: [reader] });
    new GatewayMetrics(provider.getMeter('test'));
    const { resourceMetrics } = await reader.collect();
    const metric = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === MetricNames.pushResumeIncomplete);
    const points = (metric?.dataPoints ?? []).map((p) => [p.attributes['reason'], p.value]);
    expect(points.sort()).toEqual([
      ['diverged', 0],
      ['live_overflow', 0],
      ['max_bytes', 0],
      ['max_events', 0],
      ['max_scan', 0],
      ['read_error', 0],
      ['truncated', 0],
    ]);
  });
});

describe('GatewayMetrics.transportCalls', () => {
  it("records an embedder's transport as gateway_<transport>_requests_total and _request_duration_seconds by method and code", async () => {
    const { meter, reader } = sdkMeter();
    const metrics = new GatewayMetrics(meter);
    const quic = metrics.transportCalls('quic');
    quic.record('ExecuteCommand', 'OK', 0.002);
    quic.record('ExecuteCommand', 'OK', 0.004);
    quic.record('SubscribeEvents', 'UNAVAILABLE', 1.5);
    const collected = await collect(reader);
    expect(pointsOf(collected.get('gateway_quic_requests_total'))).toEqual([
      [{ method: 'ExecuteCommand', code: 'OK' }, 2],
      [{ method: 'SubscribeEvents', code: 'UNAVAILABLE' }, 1],
    ]);
    expect(pointsOf(collected.get('gateway_quic_request_duration_seconds'))).toEqual([
      [{ method: 'ExecuteCommand', code: 'OK' }, { count: 2, sum: 0.006 }],
      [{ method: 'SubscribeEvents', code: 'UNAVAILABLE' }, { count: 1, sum: 1.5 }],
    ]);
    const histogram = collected.get('gateway_quic_request_duration_seconds');
    expect(histogram?.descriptor.unit).toBe('s');
    const boundaries = (histogram?.dataPoints[0]?.value as { buckets: { boundaries: number[] } }).buckets.boundaries;
    expect(boundaries).toEqual(LATENCY_BUCKETS);
  });

  it('hands the instruments one frozen label object per (method, code), the same on every call', async () => {
    const { meter, reader, attributesSeen } = sdkMeter();
    const calls = new GatewayMetrics(meter).transportCalls('quic');
    calls.record('ExecuteCommand', 'OK', 0.001);
    calls.record('ExecuteCommand', 'OK', 0.001);
    calls.record('ExecuteCommand', 'CANCELLED', 0.001);
    calls.record('ExecuteCommand', 'OK', 0.001);
    const timed = attributesSeen.get('gateway_quic_request_duration_seconds') ?? [];
    expect(timed).toHaveLength(4);
    expect(timed[0]).toBe(timed[1]);
    expect(timed[0]).toBe(timed[3]);
    expect(timed[2]).not.toBe(timed[0]);
    expect(timed[2]).toEqual({ method: 'ExecuteCommand', code: 'CANCELLED' });
    expect(Object.isFrozen(timed[0])).toBe(true);
    // The counter is not called per call: each pair's count is handed over, summed, when collected.
    expect(attributesSeen.get('gateway_quic_requests_total')).toBeUndefined();
    const collected = await collect(reader);
    const counted = attributesSeen.get('gateway_quic_requests_total') ?? [];
    expect(counted).toHaveLength(2);
    expect(counted[0]).toBe(timed[0]);
    expect(counted[1]).toBe(timed[2]);
    expect(pointsOf(collected.get('gateway_quic_requests_total'))).toEqual([
      [{ method: 'ExecuteCommand', code: 'CANCELLED' }, 1],
      [{ method: 'ExecuteCommand', code: 'OK' }, 3],
    ]);
    // Nothing new since: the next collection adds nothing and the totals stay.
    calls.record('ExecuteCommand', 'OK', 0.001);
    const again = await collect(reader);
    expect(attributesSeen.get('gateway_quic_requests_total')).toHaveLength(3);
    expect(pointsOf(again.get('gateway_quic_requests_total'))).toEqual([
      [{ method: 'ExecuteCommand', code: 'CANCELLED' }, 1],
      [{ method: 'ExecuteCommand', code: 'OK' }, 4],
    ]);
  });

  it('returns the same recorder for a transport every time', () => {
    const metrics = new GatewayMetrics(sdkMeter().meter);
    expect(metrics.transportCalls('quic')).toBe(metrics.transportCalls('quic'));
    expect(metrics.transportCalls('grpc')).toBe(metrics.transportCalls('grpc'));
    expect(metrics.transportCalls('quic')).not.toBe(metrics.transportCalls('grpc'));
    expect(metrics.transportConnections('quic')).toBe(metrics.transportConnections('quic'));
  });

  it('keeps the names and descriptions of the gRPC and WebSocket instruments, and adds the WebSocket duration', async () => {
    const { meter, reader } = sdkMeter();
    const metrics = new GatewayMetrics(meter);
    metrics.transportCalls('grpc').record('ExecuteCommand', 'OK', 0.01);
    metrics.transportCalls('websocket').record('ExecuteCommand', 'OK', 0.01);
    metrics.transportConnections('websocket').opened();
    const collected = await collect(reader);
    const described = (name: string) => [collected.get(name)?.descriptor.name, collected.get(name)?.descriptor.description];
    expect(described(MetricNames.grpcRequests)).toEqual(['gateway_grpc_requests_total', 'gRPC calls by method and status code']);
    expect(described(MetricNames.grpcDuration)).toEqual(['gateway_grpc_request_duration_seconds', 'gRPC call duration']);
    expect(described(MetricNames.websocketRequests)).toEqual(['gateway_websocket_requests_total', 'WebSocket calls by method and status code']);
    expect(described(MetricNames.websocketDuration)).toEqual(['gateway_websocket_request_duration_seconds', 'WebSocket call duration']);
    expect(described(MetricNames.websocketConnections)).toEqual(['gateway_websocket_connections_active', 'Open WebSocket connections']);
  });

  it('the deprecated grpc*/websocket* properties are the same instruments as the recorders', async () => {
    const { meter, reader } = sdkMeter();
    const metrics = new GatewayMetrics(meter);
    metrics.grpcRequests.add(1, { method: 'ExecuteCommand', code: 'OK' });
    metrics.grpcDuration.record(0.5, { method: 'ExecuteCommand', code: 'OK' });
    metrics.transportCalls('grpc').record('ExecuteCommand', 'OK', 0.25);
    metrics.websocketRequests.add(1, { method: 'SubscribeEvents', code: 'OK' });
    metrics.transportCalls('websocket').record('SubscribeEvents', 'OK', 0.25);
    metrics.websocketConnections.add(1);
    metrics.transportConnections('websocket').opened();
    metrics.transportConnections('websocket').closed();
    const collected = await collect(reader);
    expect(pointsOf(collected.get('gateway_grpc_requests_total'))).toEqual([[{ method: 'ExecuteCommand', code: 'OK' }, 2]]);
    expect(pointsOf(collected.get('gateway_grpc_request_duration_seconds'))).toEqual([[{ method: 'ExecuteCommand', code: 'OK' }, { count: 2, sum: 0.75 }]]);
    expect(pointsOf(collected.get('gateway_websocket_requests_total'))).toEqual([[{ method: 'SubscribeEvents', code: 'OK' }, 2]]);
    expect(pointsOf(collected.get('gateway_websocket_connections_active'))).toEqual([[{}, 1]]);
  });

  it('reports open connections per transport as gateway_<transport>_connections_active', async () => {
    const { meter, reader } = sdkMeter();
    const gauge = new GatewayMetrics(meter).transportConnections('quic');
    gauge.opened();
    gauge.opened();
    gauge.opened();
    gauge.closed();
    const collected = await collect(reader);
    expect(collected.get('gateway_quic_connections_active')?.descriptor.description).toBe('Open quic connections');
    expect(pointsOf(collected.get('gateway_quic_connections_active'))).toEqual([[{}, 2]]);
  });

  it.each([
    ['an empty name', ''],
    ['upper case', 'QUIC'],
    ['a dash', 'web-socket'],
    ['a space', 'web socket'],
    ['a name over 32 characters', 'q'.repeat(33)],
    ['a name colliding with gateway_http_requests_total', 'http'],
  ])('refuses %s as a transport name (RangeError)', (_what, name) => {
    const metrics = new GatewayMetrics(sdkMeter().meter);
    expect(() => metrics.transportCalls(name)).toThrow(RangeError);
    expect(() => metrics.transportConnections(name)).toThrow(RangeError);
  });

  it(`accepts ${MAX_TRANSPORTS} transports and refuses one more`, () => {
    const metrics = new GatewayMetrics(sdkMeter().meter);
    // grpc and websocket are two of them.
    for (let i = 0; i < MAX_TRANSPORTS - 2; i += 1) metrics.transportCalls(`t${i}`);
    metrics.transportConnections('t0');
    expect(() => metrics.transportCalls('one_more')).toThrow(RangeError);
    expect(() => metrics.transportConnections('one_more')).toThrow(RangeError);
    expect(metrics.transportCalls('t3').transport).toBe('t3');
  });

  it('refuses label values outside [A-Za-z0-9_./-] or over 128 characters, recording nothing', async () => {
    const { meter, reader } = sdkMeter();
    const calls = new GatewayMetrics(meter).transportCalls('quic');
    for (const [method, code] of [
      ['', 'OK'],
      ['Execute Command', 'OK'],
      ['ExecuteCommand', 'OK\n'],
      ['m'.repeat(129), 'OK'],
      ['ExecuteCommand', '{"x":1}'],
    ] as const) {
      expect(() => calls.record(method, code, 0.001)).toThrow(RangeError);
    }
    calls.record('edgegateway.v1.EdgeGateway/Execute-Command', '14', 0.001);
    expect(pointsOf((await collect(reader)).get('gateway_quic_requests_total'))).toEqual([[{ method: 'edgegateway.v1.EdgeGateway/Execute-Command', code: '14' }, 1]]);
  });

  it(`refuses more than ${MAX_LABEL_SETS_PER_TRANSPORT} distinct (method, code) pairs; known pairs still record`, async () => {
    const { meter, reader } = sdkMeter();
    const calls = new GatewayMetrics(meter).transportCalls('quic');
    for (let i = 0; i < MAX_LABEL_SETS_PER_TRANSPORT; i += 1) calls.record(`m${i % 16}`, `c${Math.floor(i / 16)}`, 0.001);
    expect(() => calls.record('m0', 'another', 0.001)).toThrow(RangeError);
    calls.record('m0', 'c0', 0.001);
    const points = pointsOf((await collect(reader)).get('gateway_quic_requests_total'));
    expect(points).toHaveLength(MAX_LABEL_SETS_PER_TRANSPORT);
    expect(points.find(([attributes]) => attributes['method'] === 'm0' && attributes['code'] === 'c0')?.[1]).toBe(2);
  });
});

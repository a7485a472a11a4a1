import { describe, expect, it } from 'vitest';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { GatewayMetrics, MetricNames } from './metrics.js';

class CollectingReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
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
      ['live_overflow', 0],
      ['max_bytes', 0],
      ['max_events', 0],
      ['max_scan', 0],
      ['read_error', 0],
      ['truncated', 0],
    ]);
  });
});

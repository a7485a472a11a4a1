import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { GatewayMetrics } from '../observability/metrics.js';

/** A metric reader that only collects when asked. */
class CollectingReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * `GatewayMetrics` on a real OpenTelemetry SDK meter, with a reader a test can collect from.
 * Exported from `@edge-gateway/core/testing/metrics` (it needs `@opentelemetry/sdk-metrics`,
 * which the rest of `@edge-gateway/core/testing` does not).
 */
export class MetricsHarness {
  private readonly reader = new CollectingReader();
  private readonly provider = new MeterProvider({ readers: [this.reader] });
  readonly metrics = new GatewayMetrics(this.provider.getMeter('test'));

  /**
   * Sum of the data points of instrument `name` whose attributes include `attributes`
   * (counters and up-down counters: their values; histograms: their counts; 0 when nothing
   * was recorded).
   */
  async value(name: string, attributes: Readonly<Record<string, string>> = {}): Promise<number> {
    const { resourceMetrics } = await this.reader.collect();
    let total = 0;
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        if (metric.descriptor.name !== name) continue;
        for (const point of metric.dataPoints) {
          if (!Object.entries(attributes).every(([k, v]) => point.attributes[k] === v)) continue;
          const value = point.value as number | { count: number };
          total += typeof value === 'number' ? value : value.count;
        }
      }
    }
    return total;
  }
}

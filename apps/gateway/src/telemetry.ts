import type { IncomingMessage, ServerResponse } from 'node:http';
import { context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { GatewayMetrics } from '@edge-gateway/core';

/** Metrics and (optional) trace export of the binary. */
export interface Telemetry {
  readonly metrics: GatewayMetrics;
  /** Serves the Prometheus text exposition (admin `GET /metrics`). */
  readonly metricsHandler: (req: IncomingMessage, res: ServerResponse) => void;
  /** True when traces are exported over OTLP. */
  readonly tracing: boolean;
  /** Flushes and stops exporters. */
  shutdown(): Promise<void>;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Sets up OpenTelemetry: a MeterProvider read by the Prometheus exporter (served by the admin
 * listener, no server of its own), W3C trace-context propagation, and span export over OTLP
 * only when a standard `OTEL_EXPORTER_OTLP_*ENDPOINT` variable is set.
 */
export async function setupTelemetry(env: Env = process.env, version = '0.1.0'): Promise<Telemetry> {
  const resource = resourceFromAttributes({
    'service.name': env['OTEL_SERVICE_NAME'] ?? 'edge-gateway',
    'service.version': version,
  });
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ resource, readers: [exporter] });
  const metrics = new GatewayMetrics(meterProvider.getMeter('edge-gateway', version));

  // Propagation works even without export, so a client's traceparent reaches downstreams: the
  // gRPC adapter hands the caller's context to the downstream call explicitly.
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());

  const endpoint = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  const tracesDisabled = env['OTEL_TRACES_EXPORTER'] === 'none' || env['OTEL_SDK_DISABLED'] === 'true';
  let tracerProvider: { shutdown(): Promise<void> } | undefined;
  if (endpoint !== undefined && endpoint !== '' && !tracesDisabled) {
    // Loaded only when traces are exported: the SDK costs ~150 ms of startup otherwise.
    // The AsyncLocalStorage context manager (async hooks on every promise, ~10 % of a command's
    // CPU) is installed only here: spans of instrumented libraries (Redis) need it to find
    // their parent; log lines take `trace_id` from it.
    const [{ AsyncLocalStorageContextManager }, { NodeTracerProvider }, { BatchSpanProcessor }, { OTLPTraceExporter }, { registerInstrumentations }, { redisInstrumentation }] =
      await Promise.all([
        import('@opentelemetry/context-async-hooks'),
        import('@opentelemetry/sdk-trace-node'),
        import('@opentelemetry/sdk-trace-base'),
        import('@opentelemetry/exporter-trace-otlp-http'),
        import('@opentelemetry/instrumentation'),
        import('@edge-gateway/adapters-redis/instrumentation'),
      ]);
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
    trace.setGlobalTracerProvider(provider);
    registerInstrumentations({ tracerProvider: provider, instrumentations: [redisInstrumentation()] });
    tracerProvider = provider;
  }

  return {
    metrics,
    metricsHandler: (req, res) => exporter.getMetricsRequestHandler(req, res),
    tracing: tracerProvider !== undefined,
    async shutdown() {
      await Promise.allSettled([meterProvider.shutdown(), tracerProvider?.shutdown()]);
    },
  };
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import { context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { GatewayMetrics, withBudget, type Logger } from '@edge-gateway/core';

/**
 * Longest wait for the exporters' flush at shutdown (2 s). A healthy collector takes
 * milliseconds; an unreachable one made the OTLP exporter retry for ~8 s, holding up every
 * restart. The flush is abandoned after this (the spans are lost, a warn line says so).
 */
export const TELEMETRY_FLUSH_TIMEOUT_MS = 2000;

/** Options of {@link Telemetry.shutdown}. */
export interface TelemetryShutdownOptions {
  /** Longest wait for the flush (default {@link TELEMETRY_FLUSH_TIMEOUT_MS}). */
  readonly timeoutMs?: number;
  /** Gets `telemetry not flushed` (warn) when the flush failed or did not finish in time. */
  readonly logger?: Logger;
}

/** Metrics and (optional) trace export of the binary. */
export interface Telemetry {
  /** The core's instruments, on a meter of the Prometheus-read MeterProvider. */
  readonly metrics: GatewayMetrics;
  /** Serves the Prometheus text exposition (admin `GET /metrics`). */
  readonly metricsHandler: (req: IncomingMessage, res: ServerResponse) => void;
  /** True when traces are exported over OTLP. */
  readonly tracing: boolean;
  /**
   * Flushes and stops the exporters, waiting at most `timeoutMs`. Never rejects: a flush that
   * fails or overruns is logged (`telemetry not flushed`) and given up.
   */
  shutdown(options?: TelemetryShutdownOptions): Promise<void>;
}

/** The environment {@link setupTelemetry} reads (`process.env` or a copy). */
export type TelemetryEnv = Readonly<Record<string, string | undefined>>;

/** Options of {@link setupTelemetry}. */
export interface TelemetryOptions {
  /**
   * Instrumentations to register when traces are exported, loaded only then (e.g.
   * `redisInstrumentation()` from `@edge-gateway/adapters-redis/instrumentation`). Load the
   * instrumented library only after `setupTelemetry` resolves, so it can be patched.
   */
  readonly instrumentations?: () => Promise<readonly Instrumentation[]>;
}

/**
 * Sets up OpenTelemetry: a MeterProvider read by the Prometheus exporter (served by the admin
 * listener, no server of its own), W3C trace-context propagation, and span export over OTLP
 * only when a standard `OTEL_EXPORTER_OTLP_*ENDPOINT` variable is set.
 */
export async function setupTelemetry(env: TelemetryEnv = process.env, version = '0.1.0', options: TelemetryOptions = {}): Promise<Telemetry> {
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
    const [{ AsyncLocalStorageContextManager }, { NodeTracerProvider }, { BatchSpanProcessor }, { OTLPTraceExporter }, { registerInstrumentations }, instrumentations] =
      await Promise.all([
        import('@opentelemetry/context-async-hooks'),
        import('@opentelemetry/sdk-trace-node'),
        import('@opentelemetry/sdk-trace-base'),
        import('@opentelemetry/exporter-trace-otlp-http'),
        import('@opentelemetry/instrumentation'),
        options.instrumentations?.() ?? [],
      ]);
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
    trace.setGlobalTracerProvider(provider);
    registerInstrumentations({ tracerProvider: provider, instrumentations: [...instrumentations] });
    tracerProvider = provider;
  }

  return {
    metrics,
    metricsHandler: (req, res) => exporter.getMetricsRequestHandler(req, res),
    tracing: tracerProvider !== undefined,
    async shutdown({ timeoutMs = TELEMETRY_FLUSH_TIMEOUT_MS, logger } = {}) {
      const flushes = Promise.allSettled([meterProvider.shutdown(), tracerProvider?.shutdown()]);
      try {
        const failed = (await withBudget(flushes, timeoutMs, 'telemetry flush')).find((r) => r.status === 'rejected');
        if (failed !== undefined) throw failed.reason;
      } catch (error) {
        // Spans still batched are lost; the exporter's request in flight is left to process exit.
        logger?.warn('telemetry not flushed', {
          timeout_ms: timeoutMs,
          tracing: tracerProvider !== undefined,
          error: error instanceof Error ? error.message.slice(0, 512) : String(error).slice(0, 512),
        });
      }
    },
  };
}

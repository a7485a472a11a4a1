import { ProxyTracerProvider, metrics, trace, type Counter, type Histogram, type Meter, type ObservableGauge, type UpDownCounter } from '@opentelemetry/api';

/** Names of every instrument of SPEC §8.4, in one place. */
export const MetricNames = {
  grpcRequests: 'gateway_grpc_requests_total',
  grpcDuration: 'gateway_grpc_request_duration_seconds',
  pushStreamsActive: 'gateway_push_streams_active',
  pushEventsDelivered: 'gateway_push_events_delivered_total',
  pushStreamsClosed: 'gateway_push_streams_closed_total',
  streamEntriesConsumed: 'gateway_stream_entries_consumed_total',
  streamEntriesMalformed: 'gateway_stream_entries_malformed_total',
  subscriberReconnects: 'gateway_stream_subscriber_reconnects_total',
  streamHistoryDiverged: 'gateway_stream_history_diverged_total',
  replayRejections: 'gateway_replay_rejections_total',
  redisCommandDuration: 'gateway_redis_command_duration_seconds',
  httpRequests: 'gateway_http_requests_total',
  pushResumes: 'gateway_push_resumes_total',
  pushResumeReplayed: 'gateway_push_resume_replayed_events_total',
  pushResumeIncomplete: 'gateway_push_resumes_incomplete_total',
  websocketRequests: 'gateway_websocket_requests_total',
  websocketConnections: 'gateway_websocket_connections_active',
  signerKeyInfo: 'gateway_signer_key_info',
} as const;

/** Why a push stream closed (label `reason`). */
export type StreamCloseReason = 'revoked' | 'overflow' | 'replaced' | 'shutdown' | 'client_cancelled' | 'error';

/** Why a resume could not replay everything (label `reason`). */
export type ResumeIncompleteReason = 'truncated' | 'max_events' | 'max_bytes' | 'max_scan' | 'live_overflow' | 'read_error';

/** Every {@link ResumeIncompleteReason}: each series starts at zero. */
const RESUME_INCOMPLETE_REASONS = ['truncated', 'max_events', 'max_bytes', 'max_scan', 'live_overflow', 'read_error'] as const satisfies readonly ResumeIncompleteReason[];

/** Which consumed stream (label `stream`). */
export type ConsumedStream = 'session_events' | 'client_events';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The gateway's instruments, created from an OpenTelemetry `Meter`. Core and adapters record
 * through this object; the app decides the exporter (Prometheus on the admin listener).
 * Without an SDK installed every instrument is a no-op.
 */
export class GatewayMetrics {
  readonly grpcRequests: Counter<{ method: string; code: string }>;
  readonly grpcDuration: Histogram<{ method: string; code: string }>;
  readonly pushStreamsActive: UpDownCounter;
  readonly pushEventsDelivered: Counter;
  readonly pushStreamsClosed: Counter<{ reason: StreamCloseReason }>;
  readonly streamEntriesConsumed: Counter<{ stream: ConsumedStream }>;
  readonly streamEntriesMalformed: Counter<{ stream: ConsumedStream }>;
  readonly subscriberReconnects: Counter<{ stream: ConsumedStream }>;
  readonly streamHistoryDiverged: Counter<{ stream: ConsumedStream }>;
  readonly replayRejections: Counter;
  readonly redisCommandDuration: Histogram<{ command: string; outcome: 'ok' | 'error' }>;
  readonly httpRequests: Counter<{ listener: string; route: string; status: string }>;
  readonly pushResumes: Counter;
  readonly pushResumeReplayed: Counter;
  readonly pushResumeIncomplete: Counter<{ reason: ResumeIncompleteReason }>;
  /** Calls over the WebSocket transport by method and final status name (as `grpcRequests`). */
  readonly websocketRequests: Counter<{ method: string; code: string }>;
  readonly websocketConnections: UpDownCounter;
  /** Label `key_id`: 1 for the response signer key in use, 0 for keys rotated out (see {@link GatewayMetrics.observeSignerKey}). */
  readonly signerKeyInfo: ObservableGauge<{ key_id: string }>;

  constructor(meter: Meter = metrics.getMeter('@edge-gateway/core')) {
    const seconds = { unit: 's', advice: { explicitBucketBoundaries: LATENCY_BUCKETS } };
    this.grpcRequests = meter.createCounter(MetricNames.grpcRequests, { description: 'gRPC calls by method and status code' });
    this.grpcDuration = meter.createHistogram(MetricNames.grpcDuration, { description: 'gRPC call duration', ...seconds });
    this.pushStreamsActive = meter.createUpDownCounter(MetricNames.pushStreamsActive, { description: 'Open SubscribeEvents streams' });
    this.pushEventsDelivered = meter.createCounter(MetricNames.pushEventsDelivered, { description: 'Events handed to push stream transports' });
    this.pushStreamsClosed = meter.createCounter(MetricNames.pushStreamsClosed, { description: 'Closed push streams by reason' });
    this.streamEntriesConsumed = meter.createCounter(MetricNames.streamEntriesConsumed, { description: 'Redis stream entries consumed' });
    this.streamEntriesMalformed = meter.createCounter(MetricNames.streamEntriesMalformed, { description: 'Redis stream entries dropped as malformed' });
    this.subscriberReconnects = meter.createCounter(MetricNames.subscriberReconnects, {
      description: 'Stream subscriber reconnects after a Redis error, a master change or a stalled replica',
    });
    this.streamHistoryDiverged = meter.createCounter(MetricNames.streamHistoryDiverged, {
      description: 'Reconnects that found the last consumed entry gone from the master (lost in a failover)',
    });
    this.replayRejections = meter.createCounter(MetricNames.replayRejections, { description: 'Requests refused as replays' });
    this.redisCommandDuration = meter.createHistogram(MetricNames.redisCommandDuration, { description: 'Redis command duration', ...seconds });
    this.httpRequests = meter.createCounter(MetricNames.httpRequests, { description: 'HTTP requests by listener, route and status' });
    this.pushResumes = meter.createCounter(MetricNames.pushResumes, { description: 'Push streams opened with resume_after_event_id' });
    this.pushResumeReplayed = meter.createCounter(MetricNames.pushResumeReplayed, { description: 'Events replayed from history on resume' });
    this.pushResumeIncomplete = meter.createCounter(MetricNames.pushResumeIncomplete, { description: 'Resumes that could not replay everything' });
    this.websocketRequests = meter.createCounter(MetricNames.websocketRequests, { description: 'WebSocket calls by method and status code' });
    this.websocketConnections = meter.createUpDownCounter(MetricNames.websocketConnections, { description: 'Open WebSocket connections' });
    this.signerKeyInfo = meter.createObservableGauge(MetricNames.signerKeyInfo, { description: 'Response signer key in use (1) and keys rotated out (0), by key_id' });
    // Known label sets start at zero so every series exists (and rate() works) from startup.
    for (const stream of ['session_events', 'client_events'] as const) {
      this.streamEntriesConsumed.add(0, { stream });
      this.streamEntriesMalformed.add(0, { stream });
      this.subscriberReconnects.add(0, { stream });
      this.streamHistoryDiverged.add(0, { stream });
    }
    for (const reason of ['revoked', 'overflow', 'replaced', 'shutdown', 'client_cancelled', 'error'] as const) {
      this.pushStreamsClosed.add(0, { reason });
    }
    this.pushStreamsActive.add(0);
    this.pushEventsDelivered.add(0);
    this.replayRejections.add(0);
    this.pushResumes.add(0);
    this.pushResumeReplayed.add(0);
    for (const reason of RESUME_INCOMPLETE_REASONS) this.pushResumeIncomplete.add(0, { reason });
  }

  /**
   * Reports `signer.keyId` (read at every collection, so a rotated key shows at once) as
   * `gateway_signer_key_info{key_id} 1`, and every key id this process signed with before as 0
   * (an exporter keeps a series it saw, so the old id must be set to 0 explicitly).
   */
  observeSignerKey(signer: { readonly keyId: string }): void {
    const seen = new Set<string>();
    this.signerKeyInfo.addCallback((result) => {
      seen.add(signer.keyId);
      for (const id of seen) result.observe(id === signer.keyId ? 1 : 0, { key_id: id });
    });
  }
}

/**
 * Whether an OpenTelemetry SDK tracer provider is registered, i.e. whether a span started now
 * could be recorded. Without one every span is a no-op, so the hot paths skip creating them
 * (and the contexts that carry them) altogether; a caller's trace context is still propagated.
 * Checked per call (a global lookup): an SDK registered later is picked up.
 */
export function tracerProviderInstalled(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer('@edge-gateway/core') !== undefined;
}

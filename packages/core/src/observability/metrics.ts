import { ProxyTracerProvider, metrics, trace, type Counter, type Histogram, type Meter, type ObservableGauge, type UpDownCounter } from '@opentelemetry/api';
import { GatewayErrorCode } from '../errors.js';
import {
  MAX_TRANSPORTS,
  TransportCalls,
  TransportConnections,
  checkTransportName,
  type TransportCallLabels,
  type TransportCallRecorder,
  type TransportConnectionGauge,
} from './transport-metrics.js';
import { flushBoundCounters } from './bound-counter.js';

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
  replayReservations: 'gateway_replay_reservations_total',
  redisCommandDuration: 'gateway_redis_command_duration_seconds',
  httpRequests: 'gateway_http_requests_total',
  pushResumes: 'gateway_push_resumes_total',
  pushResumeReplayed: 'gateway_push_resume_replayed_events_total',
  pushResumeIncomplete: 'gateway_push_resumes_incomplete_total',
  pushHistoryReads: 'gateway_push_history_reads_total',
  pushHistoryEntriesRead: 'gateway_push_history_entries_read_total',
  pushLossNotices: 'gateway_push_loss_notices_total',
  websocketRequests: 'gateway_websocket_requests_total',
  websocketDuration: 'gateway_websocket_request_duration_seconds',
  websocketConnections: 'gateway_websocket_connections_active',
  signerKeyInfo: 'gateway_signer_key_info',
  rateLimited: 'gateway_rate_limited_total',
  logLinesSuppressed: 'gateway_log_lines_suppressed_total',
  revocationsReasserted: 'gateway_revocations_reasserted_total',
  replayReservationsReasserted: 'gateway_replay_reservations_reasserted_total',
  revocationsForgotten: 'gateway_revocations_forgotten_total',
  revocationsRemembered: 'gateway_revocations_remembered',
  connectionsOpen: 'gateway_connections_open',
  connectionsRefused: 'gateway_connections_refused_total',
  acceptErrors: 'gateway_accept_errors_total',
  routedRelayRetries: 'gateway_routed_relay_retries_total',
  routedRelayDropped: 'gateway_routed_relay_dropped_total',
  routedRelayClaimed: 'gateway_routed_relay_claimed_total',
  routedRelayHeld: 'gateway_routed_relay_held',
  connectionsClosed: 'gateway_connections_closed_total',
} as const;

/** Why the routed relay gave an entry up (label `reason`, SPEC §9.5). */
export type RoutedRelayDropReason = 'expired' | 'refused' | 'deleted';

/** Why a push stream closed (label `reason`). */
export type StreamCloseReason = 'revoked' | 'overflow' | 'replaced' | 'shutdown' | 'client_cancelled' | 'error';

/** Why a resume could not replay everything (label `reason`). */
export type ResumeIncompleteReason = 'truncated' | 'diverged' | 'max_events' | 'max_bytes' | 'max_scan' | 'live_overflow' | 'read_error';

/** Every {@link ResumeIncompleteReason}: each series starts at zero. */
const RESUME_INCOMPLETE_REASONS = ['truncated', 'diverged', 'max_events', 'max_bytes', 'max_scan', 'live_overflow', 'read_error'] as const satisfies readonly ResumeIncompleteReason[];

/**
 * How a page of resume history was read (label `source`): `index`, from the per-user index of
 * consumed entries (the user's entries fetched by id); `scan`, the stream read from the cursor.
 */
export type HistoryReadSource = 'index' | 'scan';

/** Why open push streams were told that events may be missing (label `reason`). */
export type LossNoticeReason = 'history_diverged';

/** How a replay reservation ended (label `outcome`, SPEC §5.2). */
export type ReplayReservationOutcome = 'ok' | 'replay' | 'not_replicated' | 'unavailable';

/** Every {@link ReplayReservationOutcome}: each series starts at zero. */
const REPLAY_RESERVATION_OUTCOMES = ['ok', 'replay', 'not_replicated', 'unavailable'] as const satisfies readonly ReplayReservationOutcome[];

/** Which consumed stream (label `stream`). */
export type ConsumedStream = 'session_events' | 'client_events';

/** Names the per-transport instruments may not take: every other instrument's. */
const OTHER_INSTRUMENTS: ReadonlySet<string> = new Set(
  Object.entries(MetricNames)
    .filter(([key]) => !/^(grpc|websocket)[A-Z]/.test(key))
    .map(([, name]) => name),
);

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The gateway's instruments, created from an OpenTelemetry `Meter`. Core and adapters record
 * through this object; the app decides the exporter (Prometheus on the admin listener).
 * Without an SDK installed every instrument is a no-op.
 */
export class GatewayMetrics {
  readonly pushStreamsActive: UpDownCounter;
  readonly pushEventsDelivered: Counter;
  readonly pushStreamsClosed: Counter<{ reason: StreamCloseReason }>;
  readonly streamEntriesConsumed: Counter<{ stream: ConsumedStream }>;
  readonly streamEntriesMalformed: Counter<{ stream: ConsumedStream }>;
  readonly subscriberReconnects: Counter<{ stream: ConsumedStream }>;
  readonly streamHistoryDiverged: Counter<{ stream: ConsumedStream }>;
  readonly replayRejections: Counter;
  /** Every replay reservation (commands and subscribes) by outcome. */
  readonly replayReservations: Counter<{ outcome: ReplayReservationOutcome }>;
  readonly redisCommandDuration: Histogram<{ command: string; outcome: 'ok' | 'error' }>;
  readonly httpRequests: Counter<{ listener: string; route: string; status: string }>;
  readonly pushResumes: Counter;
  readonly pushResumeReplayed: Counter;
  readonly pushResumeIncomplete: Counter<{ reason: ResumeIncompleteReason }>;
  /** Pages of client-events history read for resumes, by how (SPEC §8.3). */
  readonly pushHistoryReads: Counter<{ source: HistoryReadSource }>;
  /** Client-events stream entries those pages read from Redis, by how. */
  readonly pushHistoryEntriesRead: Counter<{ source: HistoryReadSource }>;
  /** Requests refused by a rate limit, by the first refusing rule's `scope` and `route` (its prefix or `*`). */
  readonly rateLimited: Counter<{ scope: string; route: string }>;
  /** Signed `gateway.resume_incomplete` events sent to open streams outside a resume (one per device session told). */
  readonly pushLossNotices: Counter<{ reason: LossNoticeReason }>;
  /** Label `key_id`: 1 for the response signer key in use, 0 for keys rotated out (see {@link GatewayMetrics.observeSignerKey}). */
  readonly signerKeyInfo: ObservableGauge<{ key_id: string }>;
  /** Per-request failure lines not written (SPEC §8.5), label `reason`: the status name (`INVALID_ARGUMENT`). */
  readonly logLinesSuppressed: Counter<{ reason: string }>;
  /** Revocations written again to a master that lacked them (SPEC §5.3). */
  readonly revocationsReasserted: Counter;
  /** Replay reservations written again to a master that lacked them after a failover (SPEC §5.2). */
  readonly replayReservationsReasserted: Counter;
  /** Revocations forgotten before their retention ended, at the memory's bound (SPEC §5.5). */
  readonly revocationsForgotten: Counter;
  /** Revocations remembered now (see {@link GatewayMetrics.observeRevocations}). */
  readonly revocationsRemembered: ObservableGauge;
  /** Open connections of a listener (`listener`: `public`, `grpc`, `websocket`, `admin`), whatever the protocol on them. */
  readonly connectionsOpen: UpDownCounter<{ listener: string }>;
  /** Connections closed at accept because the listeners held `GATEWAY_MAX_CONNECTIONS`. */
  readonly connectionsRefused: Counter<{ listener: string }>;
  /** Errors Node reported from `accept` on a listener (`code`: `EMFILE`, `ENFILE`, …). */
  readonly acceptErrors: Counter<{ listener: string; code: string }>;
  /** Relay publishes that failed for a reason that can pass; the entry is kept and retried (SPEC §9.5). */
  readonly routedRelayRetries: Counter;
  /** Relay entries given up, by reason (SPEC §9.5). */
  readonly routedRelayDropped: Counter<{ reason: RoutedRelayDropReason }>;
  /** Relay entries taken over from another consumer that left them pending (SPEC §9.5). */
  readonly routedRelayClaimed: Counter;
  /** Relay entries this process holds and has not published yet (SPEC §9.5). */
  readonly routedRelayHeld: UpDownCounter;
  /**
   * Connections the gateway closed for what they cost (SPEC §2.2, §8.3), labels `transport` and
   * `reason` (`failures`: past the failure budget; `not_reading`: answers did not drain;
   * `write_timeout`: an HTTP connection's answers made no progress, SPEC §2.1).
   */
  readonly connectionsClosed: Counter<{ transport: string; reason: 'failures' | 'not_reading' | 'write_timeout' }>;

  private readonly calls = new Map<string, TransportCalls>();
  private readonly connections = new Map<string, TransportConnections>();

  constructor(private readonly meter: Meter = metrics.getMeter('@edge-gateway/core')) {
    const seconds = { unit: 's', advice: { explicitBucketBoundaries: LATENCY_BUCKETS } };
    this.transportCalls('grpc');
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
    this.replayReservations = meter.createCounter(MetricNames.replayReservations, {
      description: 'Replay reservations by outcome (ok, replay, not_replicated, unavailable)',
    });
    this.redisCommandDuration = meter.createHistogram(MetricNames.redisCommandDuration, { description: 'Redis command duration', ...seconds });
    this.httpRequests = meter.createCounter(MetricNames.httpRequests, { description: 'HTTP requests by listener, route and status' });
    this.pushResumes = meter.createCounter(MetricNames.pushResumes, { description: 'Push streams opened with resume_after_event_id' });
    this.pushResumeReplayed = meter.createCounter(MetricNames.pushResumeReplayed, { description: 'Events replayed from history on resume' });
    this.pushResumeIncomplete = meter.createCounter(MetricNames.pushResumeIncomplete, { description: 'Resumes that could not replay everything' });
    this.pushHistoryReads = meter.createCounter(MetricNames.pushHistoryReads, {
      description: 'Pages of client-events history read for resumes (source: index = per-user index, scan = stream read from the cursor)',
    });
    this.pushHistoryEntriesRead = meter.createCounter(MetricNames.pushHistoryEntriesRead, { description: 'Client-events stream entries read from Redis for resumes' });
    this.rateLimited = meter.createCounter(MetricNames.rateLimited, { description: 'Requests refused by a rate limit, by the first refusing rule' });
    this.pushLossNotices = meter.createCounter(MetricNames.pushLossNotices, {
      description: 'gateway.resume_incomplete events sent to open streams (per device session) because events they were sent, or their user had, were lost',
    });
    // The binary's transports exist from the start, as before the per-transport recorders.
    this.transportCalls('websocket');
    this.transportConnections('websocket');
    this.signerKeyInfo = meter.createObservableGauge(MetricNames.signerKeyInfo, { description: 'Response signer key in use (1) and keys rotated out (0), by key_id' });
    this.logLinesSuppressed = meter.createCounter(MetricNames.logLinesSuppressed, {
      description: 'Per-request failure log lines not written (rate bound), by the status code of the request',
    });
    this.revocationsReasserted = meter.createCounter(MetricNames.revocationsReasserted, {
      description: 'Revocations written again (revoked record and snapshot) to a master that lacked them after a failover',
    });
    this.replayReservationsReasserted = meter.createCounter(MetricNames.replayReservationsReasserted, {
      description: 'Replay reservations this process confirmed that a new master lacked after a failover, written again',
    });
    this.revocationsForgotten = meter.createCounter(MetricNames.revocationsForgotten, {
      description: 'Revocations forgotten before their retention ended because the memory was full',
    });
    this.revocationsRemembered = meter.createObservableGauge(MetricNames.revocationsRemembered, { description: 'Revocations this process remembers' });
    this.connectionsOpen = meter.createUpDownCounter(MetricNames.connectionsOpen, { description: 'Open connections by listener' });
    this.connectionsRefused = meter.createCounter(MetricNames.connectionsRefused, {
      description: 'Connections closed at once because the public listeners held GATEWAY_MAX_CONNECTIONS, by listener',
    });
    this.acceptErrors = meter.createCounter(MetricNames.acceptErrors, { description: 'Errors reported by accept on a listener, by listener and errno code' });
    this.routedRelayRetries = meter.createCounter(MetricNames.routedRelayRetries, {
      description: 'Routed relay publishes that failed for a reason that can pass (the entry is kept and retried)',
    });
    this.routedRelayDropped = meter.createCounter(MetricNames.routedRelayDropped, { description: 'Routed relay entries given up, by reason' });
    this.routedRelayClaimed = meter.createCounter(MetricNames.routedRelayClaimed, {
      description: 'Routed relay entries taken over from a consumer that left them pending',
    });
    this.routedRelayHeld = meter.createUpDownCounter(MetricNames.routedRelayHeld, { description: 'Routed relay entries held by this process, not published yet' });
    // Known label sets start at zero so every series exists (and rate() works) from startup.
    for (const code of Object.values(GatewayErrorCode)) this.logLinesSuppressed.add(0, { reason: code.toUpperCase() });
    this.connectionsClosed = meter.createCounter(MetricNames.connectionsClosed, { description: 'Connections closed by the gateway for what they cost, by transport and reason' });
    for (const transport of ['grpc', 'websocket']) for (const reason of ['failures', 'not_reading'] as const) this.connectionsClosed.add(0, { transport, reason });
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
    this.revocationsReasserted.add(0);
    this.replayReservationsReasserted.add(0);
    this.revocationsForgotten.add(0);
    this.routedRelayRetries.add(0);
    this.routedRelayClaimed.add(0);
    this.routedRelayHeld.add(0);
    for (const reason of ['expired', 'refused', 'deleted'] as const) this.routedRelayDropped.add(0, { reason });
    for (const outcome of REPLAY_RESERVATION_OUTCOMES) this.replayReservations.add(0, { outcome });
    this.pushResumes.add(0);
    this.pushResumeReplayed.add(0);
    for (const reason of RESUME_INCOMPLETE_REASONS) this.pushResumeIncomplete.add(0, { reason });
    for (const source of ['index', 'scan'] as const) {
      this.pushHistoryReads.add(0, { source });
      this.pushHistoryEntriesRead.add(0, { source });
    }
    this.pushLossNotices.add(0, { reason: 'history_diverged' });
    // Adds summed outside the SDK (BoundCounter: the per-call counts of the transports, the
    // rate-limit refusals) reach their counters here, before the SDK reads them: it runs a
    // meter's observable callbacks first at every collection. Tied to an observable gauge that
    // always exists; this callback observes nothing itself.
    meter.addBatchObservableCallback(() => {
      for (const calls of this.calls.values()) calls.flush();
      flushBoundCounters(this.rateLimited);
    }, [this.signerKeyInfo]);
  }

  /**
   * The call recorder of `transport` (`grpc`, `websocket`, or an embedder's own, e.g. `quic`):
   * `gateway_<transport>_requests_total{method,code}` and
   * `gateway_<transport>_request_duration_seconds{method,code}` (the latency buckets of every
   * histogram here). Created on first use and the same object on every later call, so a
   * transport may ask per call; better, keep it.
   *
   * @throws RangeError when `transport` is not 1–32 characters of `[a-z0-9_]`, would collide
   *   with another gateway metric (`http`), or would be the 17th distinct transport.
   */
  transportCalls(transport: string): TransportCallRecorder {
    return this.callInstruments(transport);
  }

  /**
   * The open-connection gauge of `transport`, `gateway_<transport>_connections_active`
   * (only for connection-oriented transports; created on first use, then cached).
   *
   * @throws RangeError as {@link GatewayMetrics.transportCalls}.
   */
  transportConnections(transport: string): TransportConnectionGauge {
    let gauge = this.connections.get(transport);
    if (gauge === undefined) {
      this.checkNewTransport(transport);
      gauge = new TransportConnections(this.meter, transport);
      this.connections.set(transport, gauge);
    }
    return gauge;
  }

  /** @deprecated Use `transportCalls('grpc').record(…)`; the same instrument. */
  get grpcRequests(): Counter<TransportCallLabels> {
    return this.callInstruments('grpc').requests;
  }

  /** @deprecated Use `transportCalls('grpc').record(…)`; the same instrument. */
  get grpcDuration(): Histogram<TransportCallLabels> {
    return this.callInstruments('grpc').duration;
  }

  /** @deprecated Use `transportCalls('websocket').record(…)`, which also records the duration; the same counter. */
  get websocketRequests(): Counter<TransportCallLabels> {
    return this.callInstruments('websocket').requests;
  }

  /** @deprecated Use `transportConnections('websocket')`; the same instrument. */
  get websocketConnections(): UpDownCounter {
    return (this.transportConnections('websocket') as TransportConnections).gauge;
  }

  private callInstruments(transport: string): TransportCalls {
    let calls = this.calls.get(transport);
    if (calls === undefined) {
      this.checkNewTransport(transport);
      calls = new TransportCalls(this.meter, transport, LATENCY_BUCKETS);
      this.calls.set(transport, calls);
    }
    return calls;
  }

  private checkNewTransport(transport: string): void {
    checkTransportName(transport, OTHER_INSTRUMENTS);
    const known = new Set([...this.calls.keys(), ...this.connections.keys()]);
    if (!known.has(transport) && known.size >= MAX_TRANSPORTS) throw new RangeError(`at most ${MAX_TRANSPORTS} transports`);
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

  /** Reports `memory.size` as `gateway_revocations_remembered` at every collection. */
  observeRevocations(memory: { readonly size: number }): void {
    this.revocationsRemembered.addCallback((result) => result.observe(memory.size));
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

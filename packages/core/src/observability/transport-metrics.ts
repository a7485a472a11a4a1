import type { Counter, Histogram, Meter, UpDownCounter } from '@opentelemetry/api';
import { BoundCounter } from './bound-counter.js';

/** Labels of one call: `method` and `code`. One frozen object per pair, reused for every call. */
export type TransportCallLabels = Readonly<{ method: string; code: string }>;

/**
 * Records the finished calls of one transport (from {@link GatewayMetrics.transportCalls}).
 * Every transport — the binary's gRPC and WebSocket, or one an embedder writes — records
 * through one of these, so its calls show under its own metric names.
 */
export interface TransportCallRecorder {
  /** The transport name, as it appears in the metric names (`grpc`, `websocket`). */
  readonly transport: string;
  /**
   * Counts one finished call in `gateway_<transport>_requests_total{method,code}` and records
   * its duration in `gateway_<transport>_request_duration_seconds{method,code}`.
   *
   * `method` and `code` must come from a closed set the transport defines (a method name such
   * as `ExecuteCommand`, a status name such as `OK`), never from client input: each distinct
   * pair is a time series. Once a pair was seen, recording it allocates nothing.
   *
   * @throws RangeError when `method` or `code` is not 1–{@link MAX_LABEL_VALUE_CHARS}
   *   characters of `[A-Za-z0-9_./-]`, or when a new pair would exceed
   *   {@link MAX_LABEL_SETS_PER_TRANSPORT} (a transport passing unbounded values: fail closed).
   */
  record(method: string, code: string, durationSeconds: number): void;
}

/**
 * Open connections of one transport (from {@link GatewayMetrics.transportConnections}):
 * the gauge `gateway_<transport>_connections_active`.
 */
export interface TransportConnectionGauge {
  readonly transport: string;
  /** A connection was accepted. */
  opened(): void;
  /** A connection that {@link opened} closed (call it once per connection). */
  closed(): void;
}

/** Transport names: lowercase letters, digits and `_`, as in `gateway_<transport>_requests_total`. */
export const TRANSPORT_NAME_PATTERN = /^[a-z0-9_]{1,32}$/;
/** Distinct transports one `GatewayMetrics` accepts. */
export const MAX_TRANSPORTS = 16;
/** Distinct (`method`, `code`) pairs one transport may record. */
export const MAX_LABEL_SETS_PER_TRANSPORT = 256;
/** Longest `method` or `code` label value. */
export const MAX_LABEL_VALUE_CHARS = 128;
const LABEL_VALUE_PATTERN = /^[A-Za-z0-9_./-]+$/;

/** How the descriptions name the transports the gateway ships (kept byte-identical in HELP lines). */
const DISPLAY_NAMES: Readonly<Record<string, string>> = { grpc: 'gRPC', websocket: 'WebSocket' };

/** The metric names of `transport`. */
export function transportMetricNames(transport: string): { requests: string; duration: string; connections: string } {
  return {
    requests: `gateway_${transport}_requests_total`,
    duration: `gateway_${transport}_request_duration_seconds`,
    connections: `gateway_${transport}_connections_active`,
  };
}

/**
 * Throws a `RangeError` unless `transport` is a valid name whose metric names do not collide
 * with `taken` (the names of the gateway's other instruments, e.g. `http` would collide with
 * `gateway_http_requests_total`).
 */
export function checkTransportName(transport: string, taken: ReadonlySet<string>): void {
  if (typeof transport !== 'string' || !TRANSPORT_NAME_PATTERN.test(transport)) {
    throw new RangeError(`transport name must be 1-32 characters of [a-z0-9_]`);
  }
  const names = transportMetricNames(transport);
  if (taken.has(names.requests) || taken.has(names.duration) || taken.has(names.connections)) {
    throw new RangeError(`transport name "${transport}" collides with another gateway metric`);
  }
}

const describe = (transport: string): string => DISPLAY_NAMES[transport] ?? transport;

/** The counter and histogram of one transport, with its cache of label objects. */
export class TransportCalls implements TransportCallRecorder {
  readonly requests: Counter<TransportCallLabels>;
  readonly duration: Histogram<TransportCallLabels>;
  // method -> code -> labels and the pair's count: two lookups and no key string built per call.
  private readonly labelSets = new Map<string, Map<string, BoundCounter<TransportCallLabels>>>();
  private labelSetCount = 0;

  constructor(
    meter: Meter,
    readonly transport: string,
    buckets: readonly number[],
  ) {
    const names = transportMetricNames(transport);
    this.requests = meter.createCounter(names.requests, { description: `${describe(transport)} calls by method and status code` });
    this.duration = meter.createHistogram(names.duration, {
      description: `${describe(transport)} call duration`,
      unit: 's',
      advice: { explicitBucketBoundaries: [...buckets] },
    });
  }

  record(method: string, code: string, durationSeconds: number): void {
    const count = this.labelSets.get(method)?.get(code) ?? this.newLabels(method, code);
    // The count is summed per pair and handed to the counter before each collection (see BoundCounter).
    count.add(1);
    this.duration.record(durationSeconds, count.attributes);
  }

  /** Hands the calls counted since the last collection to `requests` (GatewayMetrics, before each collection). */
  flush(): void {
    for (const byCode of this.labelSets.values()) for (const count of byCode.values()) count.flush();
  }

  private newLabels(method: string, code: string): BoundCounter<TransportCallLabels> {
    checkLabelValue('method', method);
    checkLabelValue('code', code);
    if (this.labelSetCount >= MAX_LABEL_SETS_PER_TRANSPORT) {
      throw new RangeError(`transport ${this.transport} recorded more than ${MAX_LABEL_SETS_PER_TRANSPORT} distinct method/code pairs`);
    }
    let byCode = this.labelSets.get(method);
    if (byCode === undefined) this.labelSets.set(method, (byCode = new Map()));
    const count = new BoundCounter(this.requests, Object.freeze({ method, code }));
    byCode.set(code, count);
    this.labelSetCount += 1;
    return count;
  }
}

function checkLabelValue(label: 'method' | 'code', value: string): void {
  // The value is not echoed: it may be whatever a careless transport handed over.
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_LABEL_VALUE_CHARS || !LABEL_VALUE_PATTERN.test(value)) {
    throw new RangeError(`transport call label ${label} must be 1-${MAX_LABEL_VALUE_CHARS} characters of [A-Za-z0-9_./-]`);
  }
}

/** The connection gauge of one transport. */
export class TransportConnections implements TransportConnectionGauge {
  readonly gauge: UpDownCounter;

  constructor(
    meter: Meter,
    readonly transport: string,
  ) {
    this.gauge = meter.createUpDownCounter(transportMetricNames(transport).connections, { description: `Open ${describe(transport)} connections` });
  }

  opened(): void {
    this.gauge.add(1);
  }

  closed(): void {
    this.gauge.add(-1);
  }
}

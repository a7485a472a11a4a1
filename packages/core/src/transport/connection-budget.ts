import { StatusCodes } from '@edge-gateway/protocol';
import type { GatewayMetrics } from '../observability/metrics.js';
import { RequestLogLimiter } from '../observability/request-log-limiter.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import { gcra } from '../rate-limit/gcra.js';

/** `GATEWAY_CONNECTION_MAX_BUFFER_BYTES` default: answer bytes queued per connection before it stops being read. */
export const DEFAULT_CONNECTION_MAX_BUFFER_BYTES = 8 * 1024 * 1024;
/** `GATEWAY_CONNECTION_DRAIN_TIMEOUT` default. */
export const DEFAULT_CONNECTION_DRAIN_TIMEOUT_MS = 30_000;
/** `GATEWAY_CONNECTION_FAILURE_LIMIT` default. */
export const DEFAULT_CONNECTION_FAILURE_LIMIT = '20/s:40';
/**
 * Calls (commands and streams) one connection may have in flight, on every transport: the
 * WebSocket transport closes a connection past it (1008), the gRPC transport advertises it
 * (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`, so clients queue further calls).
 */
export const MAX_CALLS_PER_CONNECTION = 100;
/** The messages a connection is closed with (WebSocket close reason; gRPC status details and GOAWAY data). */
export const ConnectionCloseMessages = {
  failures: 'too many failed requests',
  not_reading: 'not reading',
} as const;

/** Why a connection was closed (label `reason` of `gateway_connections_closed_total`). */
export type ConnectionCloseReason = keyof typeof ConnectionCloseMessages;

/** A failure budget: `burst` refused requests at once, then one per `intervalMs` (GCRA). */
export interface FailureLimit {
  /** As configured, e.g. `20/s:40`. */
  readonly text: string;
  /** The emission interval: one more refusal is allowed every this many milliseconds. */
  readonly intervalMs: number;
  /** Refusals allowed at once. */
  readonly burst: number;
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;
const FAILURE_LIMIT = /^(\d+)\/([smh])(?::(\d+))?$/;
const MAX_COUNT = 1_000_000_000;

/**
 * Parses a failure budget `<rate>/<s|m|h>[:burst]` (`20/s:40`; the burst defaults to the rate's
 * count), the syntax of the rate limit rules. Throws a `RangeError` saying what is wrong.
 */
export function parseFailureLimit(text: string): FailureLimit {
  const trimmed = text.trim();
  const match = FAILURE_LIMIT.exec(trimmed);
  if (match === null) throw new RangeError('is not <rate>/<s|m|h>[:burst] (e.g. 20/s:40)');
  const count = Number(match[1]);
  const burst = match[3] === undefined ? count : Number(match[3]);
  if (!(count >= 1 && count <= MAX_COUNT) || !(burst >= 1 && burst <= MAX_COUNT)) throw new RangeError(`the rate and the burst must be 1-${MAX_COUNT}`);
  return { text: `${count}/${match[2]}:${burst}`, intervalMs: UNIT_MS[match[2] as keyof typeof UNIT_MS] / count, burst };
}

/** What one connection may cost (SPEC §2.2, §8.3): every transport enforces the same. */
export interface ConnectionLimits {
  /**
   * Answer bytes (command results, statuses, stream events) handed to the connection and not
   * yet taken by its socket, past which the connection is not read any more until they drain
   * below half (`GATEWAY_CONNECTION_MAX_BUFFER_BYTES`).
   */
  readonly maxBufferBytes: number;
  /** A connection not read for this long because its answers did not drain is closed (`GATEWAY_CONNECTION_DRAIN_TIMEOUT`). */
  readonly drainTimeoutMs: number;
  /** Refused requests a connection may send before it is closed (`GATEWAY_CONNECTION_FAILURE_LIMIT`). */
  readonly failureLimit: FailureLimit;
}

/** The binary's defaults. */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = Object.freeze({
  maxBufferBytes: DEFAULT_CONNECTION_MAX_BUFFER_BYTES,
  drainTimeoutMs: DEFAULT_CONNECTION_DRAIN_TIMEOUT_MS,
  failureLimit: parseFailureLimit(DEFAULT_CONNECTION_FAILURE_LIMIT),
});

/**
 * The statuses of a refused request (SPEC §4 steps 1-5 and 7): invalid argument, stale
 * timestamp, unknown session, bad signature (`UNAUTHENTICATED`), revoked session, replay. They
 * draw from the connection's failure budget; the other failures are not the client's doing.
 */
const REFUSALS: ReadonlySet<number> = new Set([StatusCodes.INVALID_ARGUMENT, StatusCodes.UNAUTHENTICATED, StatusCodes.FAILED_PRECONDITION, StatusCodes.ALREADY_EXISTS]);

/** Whether a request answered with `statusCode` (gRPC numbering) counts against the failure budget. */
export function isRefusal(statusCode: number): boolean {
  return REFUSALS.has(statusCode);
}

/** What a budget asks the transport to do with its connection. */
export interface ConnectionControl {
  /** Stop reading new requests (answers keep going out). */
  pauseReading(): void;
  /** Read requests again. */
  resumeReading(): void;
  /**
   * Close the connection: its calls still in flight end `RESOURCE_EXHAUSTED` `message`, then the
   * transport's own close (WebSocket 1008 `message`, gRPC GOAWAY). Called once.
   */
  close(reason: ConnectionCloseReason, message: string): void;
}

export interface ConnectionBudgetsOptions {
  /** The transport's name (`grpc`, `websocket`): label and log field. */
  readonly transport: string;
  /** Counts closes in `gateway_connections_closed_total{transport,reason}`. */
  readonly metrics?: GatewayMetrics;
  /** Where the `connection closed` lines go. */
  readonly logger?: Logger;
  /** The core's failure-line limiter (`GatewayCore.requestLog`): a close is a line per connection. */
  readonly requestLog?: RequestLogLimiter;
  /** Monotonic milliseconds (default `performance.now()`; for tests). */
  readonly now?: () => number;
}

/**
 * The per-connection bounds of one transport listener: `open()` one {@link ConnectionBudget} per
 * accepted connection. Whatever two transports would each have to write about backpressure and
 * failure budgets is here; a transport reports bytes and statuses and does what it is told.
 * A helper for transport adapters (the gRPC and WebSocket ones use it; so can yours).
 */
export class ConnectionBudgets {
  /** The limits in force (defaults filled in). */
  readonly limits: ConnectionLimits;
  /** @internal */
  readonly logger: Logger;
  /** @internal */
  readonly requestLog: RequestLogLimiter;
  /** @internal */
  readonly now: () => number;

  constructor(
    limits: Partial<ConnectionLimits>,
    /** @internal */
    readonly options: ConnectionBudgetsOptions,
  ) {
    this.limits = { ...DEFAULT_CONNECTION_LIMITS, ...limits };
    this.logger = options.logger ?? noopLogger;
    this.requestLog = options.requestLog ?? new RequestLogLimiter({ logger: this.logger, ...(options.metrics === undefined ? {} : { metrics: options.metrics }) });
    this.now = options.now ?? (() => performance.now());
  }

  /** The budget of a connection just accepted; `control` acts on it. */
  open(control: ConnectionControl): ConnectionBudget {
    return new ConnectionBudget(this, control);
  }
}

/**
 * One connection's bounds (SPEC §2.2, §8.3):
 *
 * - **Backpressure.** The transport reports each answer's bytes when it hands them to the
 *   connection ({@link queued}) and when the socket took them ({@link written}). Past
 *   `maxBufferBytes` the budget pauses reading; below half it resumes; still paused after
 *   `drainTimeoutMs`, it closes the connection `not reading`.
 * - **Failure budget.** The transport reports each request's final status ({@link answered});
 *   refused requests (see {@link isRefusal}) draw from a GCRA budget, and the first one past it
 *   closes the connection `too many failed requests`.
 *
 * A close is counted in `gateway_connections_closed_total{transport,reason}` and logged
 * (`connection closed`, rate-bounded like any request failure line).
 */
export class ConnectionBudget {
  private bytes = 0;
  private paused = false;
  private drainTimer: ReturnType<typeof setTimeout> | undefined;
  private failureTat: number | undefined;
  private failures = 0;
  private closeReason: ConnectionCloseReason | undefined;
  private gone = false;

  /** @internal use {@link ConnectionBudgets.open} */
  constructor(
    private readonly budgets: ConnectionBudgets,
    private readonly control: ConnectionControl,
  ) {}

  /** Answer bytes handed to the connection and not yet taken by its socket. */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** True while the connection is not read because its answers did not drain. */
  get readingPaused(): boolean {
    return this.paused;
  }

  /** Why the budget closed the connection; undefined while it is open (or it closed otherwise). */
  get closedFor(): ConnectionCloseReason | undefined {
    return this.closeReason;
  }

  /** `bytes` of an answer were handed to the connection. */
  queued(bytes: number): void {
    this.bytes += bytes;
    if (this.paused || this.gone || this.closeReason !== undefined || this.bytes <= this.budgets.limits.maxBufferBytes) return;
    this.paused = true;
    this.control.pauseReading();
    this.drainTimer = setTimeout(() => this.close('not_reading'), this.budgets.limits.drainTimeoutMs);
    this.drainTimer.unref?.();
  }

  /** `bytes` reported by {@link queued} were taken by the socket (or dropped with their call). */
  written(bytes: number): void {
    this.bytes = Math.max(0, this.bytes - bytes);
    if (!this.paused || this.gone || this.closeReason !== undefined || this.bytes >= this.budgets.limits.maxBufferBytes / 2) return;
    this.paused = false;
    clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    this.control.resumeReading();
  }

  /**
   * A request of this connection ended with `statusCode` (gRPC numbering). Returns false when the
   * connection is closing (this refusal was past its failure budget, or it closed before).
   */
  answered(statusCode: number): boolean {
    if (this.closeReason !== undefined || this.gone) return false;
    if (!isRefusal(statusCode)) return true;
    this.failures += 1;
    const { intervalMs, burst } = this.budgets.limits.failureLimit;
    const now = this.budgets.now();
    const step = gcra(this.failureTat, now, intervalMs, burst);
    if (step.retryAfterMs > 0) {
      this.close('failures');
      return false;
    }
    this.failureTat = step.nextTat;
    return true;
  }

  /** The connection is gone (whoever closed it): stops the drain timer. */
  closed(): void {
    this.gone = true;
    clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
  }

  private close(reason: ConnectionCloseReason): void {
    if (this.closeReason !== undefined || this.gone) return;
    this.closeReason = reason;
    clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    const { transport, metrics } = this.budgets.options;
    metrics?.connectionsClosed.add(1, { transport, reason });
    if (this.budgets.requestLog.allow(transport, 'RESOURCE_EXHAUSTED')) {
      this.budgets.logger.warn('connection closed', {
        transport,
        reason: ConnectionCloseMessages[reason],
        ...(reason === 'failures' ? { refused_requests: this.failures, failure_limit: this.budgets.limits.failureLimit.text } : { queued_bytes: this.bytes, drain_timeout_ms: this.budgets.limits.drainTimeoutMs }),
      });
    }
    this.control.close(reason, ConnectionCloseMessages[reason]);
  }
}

import type { GatewayErrorCode } from '../errors.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { GatewayMetrics } from './metrics.js';

/** Per-request failure lines written at most per second for one (transport, code) (SPEC §8.5). */
export const FAILURE_LINES_PER_SECOND = 10;
/** While lines of a (transport, code) are suppressed, one summary line per this interval. */
export const SUPPRESSED_SUMMARY_INTERVAL_MS = 10_000;
/** The transport key of a call whose transport did not name itself (`CallContext.transport`). */
export const UNNAMED_TRANSPORT = 'unnamed';
/** Distinct transports tracked apart; more share one key (a careless embedder cannot grow the map). */
export const MAX_LIMITED_TRANSPORTS = 16;
/** Distinct codes tracked apart per transport; more share one key. */
export const MAX_LIMITED_CODES = 64;
const OVERFLOW_KEY = 'other';

/** The status name of a core error code (`INVALID_ARGUMENT`), as in the `code` label of the request metrics. */
export function statusNameOf(code: GatewayErrorCode): string {
  return code.toUpperCase();
}

export interface RequestLogLimiterOptions {
  /** Where the `request failure lines suppressed` summaries go. */
  readonly logger?: Logger;
  /** Counts suppressed lines in `gateway_log_lines_suppressed_total{reason}`. */
  readonly metrics?: GatewayMetrics;
  /** Default 10 (`FAILURE_LINES_PER_SECOND`). */
  readonly perSecond?: number;
  /** Default 10 s (`SUPPRESSED_SUMMARY_INTERVAL_MS`). */
  readonly summaryIntervalMs?: number;
  /** Monotonic milliseconds (default `performance.now()`; for tests). */
  readonly now?: () => number;
}

interface Bucket {
  readonly transport: string;
  readonly code: string;
  windowStart: number;
  written: number;
  suppressed: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Bounds what per-request failure lines cost (SPEC §8.5): a line that a request which failed
 * would write is written only while its (transport, status code) has written fewer than
 * 10 (`FAILURE_LINES_PER_SECOND`) this second; the rest are counted in
 * `gateway_log_lines_suppressed_total{reason=<code>}` and summed up in one
 * `request failure lines suppressed` line (`transport`, `code`, `suppressed`) per
 * 10 s. A flood of bad requests then writes a few lines a
 * second however fast it comes; request metrics still count every request.
 *
 * Ask once per request ({@link allow}) and write all of that request's failure lines, or none.
 * A helper for transport adapters: take the core's instance (`GatewayCore.requestLog`).
 */
export class RequestLogLimiter {
  private readonly buckets = new Map<string, Map<string, Bucket>>();
  private readonly logger: Logger;
  private readonly perSecond: number;
  private readonly summaryIntervalMs: number;
  private readonly now: () => number;

  constructor(private readonly options: RequestLogLimiterOptions = {}) {
    this.logger = options.logger ?? noopLogger;
    this.perSecond = options.perSecond ?? FAILURE_LINES_PER_SECOND;
    this.summaryIntervalMs = options.summaryIntervalMs ?? SUPPRESSED_SUMMARY_INTERVAL_MS;
    this.now = options.now ?? (() => performance.now());
  }

  /**
   * Whether the failure lines of one request that failed with `code` (a status name such as
   * `INVALID_ARGUMENT`, from a closed set) on `transport` may be written now. False counts
   * the request's lines as suppressed.
   */
  allow(transport: string, code: string): boolean {
    const bucket = this.bucket(transport, code);
    const now = this.now();
    if (now - bucket.windowStart >= 1000) {
      bucket.windowStart = now;
      bucket.written = 0;
    }
    if (bucket.written < this.perSecond) {
      bucket.written += 1;
      return true;
    }
    bucket.suppressed += 1;
    this.options.metrics?.logLinesSuppressed.add(1, { reason: bucket.code });
    if (bucket.timer === undefined) {
      bucket.timer = setTimeout(() => this.summarize(bucket), this.summaryIntervalMs);
      // A pending summary never keeps the process alive (flush() writes it at shutdown).
      bucket.timer.unref?.();
    }
    return false;
  }

  /** Writes the pending summaries now (at shutdown, so no count is lost). */
  flush(): void {
    for (const byCode of this.buckets.values()) for (const bucket of byCode.values()) if (bucket.suppressed > 0) this.summarize(bucket);
  }

  private summarize(bucket: Bucket): void {
    clearTimeout(bucket.timer);
    bucket.timer = undefined;
    if (bucket.suppressed === 0) return;
    this.logger.warn('request failure lines suppressed', {
      transport: bucket.transport,
      code: bucket.code,
      suppressed: bucket.suppressed,
      interval_ms: this.summaryIntervalMs,
    });
    bucket.suppressed = 0;
  }

  private bucket(transport: string, code: string): Bucket {
    let byCode = this.buckets.get(transport);
    if (byCode === undefined) {
      const key = this.buckets.size < MAX_LIMITED_TRANSPORTS ? transport : OVERFLOW_KEY;
      byCode = this.buckets.get(key) ?? new Map<string, Bucket>();
      this.buckets.set(key, byCode);
      transport = key;
    }
    let bucket = byCode.get(code);
    if (bucket === undefined) {
      const key = byCode.size < MAX_LIMITED_CODES ? code : OVERFLOW_KEY;
      bucket = byCode.get(key) ?? { transport, code: key, windowStart: -Infinity, written: 0, suppressed: 0, timer: undefined };
      byCode.set(key, bucket);
    }
    return bucket;
  }
}

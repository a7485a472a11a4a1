import { GatewayMetrics } from '../observability/metrics.js';
import type { Clock } from '../ports/clock.port.js';
import { systemClock } from '../ports/clock.port.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { RevocationStore } from '../ports/revocation-store.port.js';
import type { RememberedRevocation, RevocationMemory } from './revocation-memory.js';
import { rewritePasses } from './rewrite-passes.js';

/** Options of {@link RevocationReasserter}. */
export interface RevocationReasserterOptions {
  readonly memory: RevocationMemory;
  readonly store: RevocationStore;
  /** Store calls in flight at most (default 128). */
  readonly concurrency?: number;
  /** Backoff between rounds of failed writes (default 100 ms doubling up to 2 s). */
  readonly retry?: { readonly minDelayMs?: number; readonly maxDelayMs?: number };
  readonly clock?: Clock;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
}

/** Session ids per log line. */
const IDS_PER_LINE = 100;

/**
 * Writes the remembered revocations a new master lacks (SPEC §5.3): after the session-events
 * history diverged or the master changed, every revocation the {@link RevocationMemory} holds
 * is checked on the store and, where the record does not say `revoked`, its record and
 * snapshot are written again (`gateway_revocations_reasserted_total`, logged with the session
 * ids). Writes that fail (no master yet) are retried with backoff until they succeed, the
 * revocation is no longer remembered, or {@link RevocationReasserter.stop}. A trigger during a
 * round runs one more round afterwards (the master may have changed again).
 */
export class RevocationReasserter {
  private readonly concurrency: number;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly clock: Clock;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private running: Promise<void> | undefined;
  private pendingReason: string | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(private readonly options: RevocationReasserterOptions) {
    this.concurrency = Math.max(1, options.concurrency ?? 128);
    this.minDelayMs = options.retry?.minDelayMs ?? 100;
    this.maxDelayMs = options.retry?.maxDelayMs ?? 2000;
    this.clock = options.clock ?? systemClock;
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = options.logger ?? noopLogger;
  }

  /** Whether a round is running or queued. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /**
   * Checks every remembered revocation on the store and writes back those it lacks. Returns at
   * once; {@link RevocationReasserter.idle} resolves when the work is done.
   */
  trigger(reason: string): void {
    if (this.stopped) return;
    if (this.options.memory.size === 0) return;
    if (this.running !== undefined) {
      this.pendingReason = reason;
      // A retry backoff in progress starts over on the (maybe new) master at once.
      this.wake?.();
      return;
    }
    this.running = this.loop(reason).finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves once no round is running or queued. */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  /** Stops retrying; a round in progress ends after its current writes. Idempotent. */
  async close(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }

  /** @deprecated Use {@link RevocationReasserter.close} (one shutdown verb in every package). */
  stop(): Promise<void> {
    return this.close();
  }

  /** `await using reasserter = new RevocationReasserter(…)`: {@link RevocationReasserter.close} at scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private async loop(reason: string): Promise<void> {
    let current: string | undefined = reason;
    while (current !== undefined && !this.stopped) {
      this.pendingReason = undefined;
      await this.round(current);
      current = this.pendingReason;
    }
  }

  /** One round: every remembered revocation until each is written or present (or forgotten). */
  private async round(reason: string): Promise<void> {
    const started = this.clock.now();
    // Newest first: a failover loses the revocations written last.
    const items = this.options.memory.list().reverse();
    let replaced = false;
    const { written } = await rewritePasses({
      items,
      concurrency: this.concurrency,
      stopped: () => this.stopped,
      // Forgotten meanwhile (re-activated by an `active` snapshot, or expired): not written.
      wanted: (revocation) => this.options.memory.get(revocation.deviceSessionId) !== undefined,
      write: async (revocation) => (await this.options.store.reassert(toReassert(revocation, this.clock.now()))) === 'written',
      onPass: (writtenNow) => {
        if (writtenNow.length === 0) return;
        this.metrics.revocationsReasserted.add(writtenNow.length);
        for (let i = 0; i < writtenNow.length; i += IDS_PER_LINE) {
          const chunk = writtenNow.slice(i, i + IDS_PER_LINE);
          this.logger.warn('revocations re-asserted: the master lacked them (lost in a failover)', {
            reason,
            count: chunk.length,
            device_session_ids: chunk.map((r) => r.deviceSessionId),
          });
        }
      },
      retryAfter: async (attempt, failed, error) => {
        // A newer trigger (master changed again) starts a fresh round on the new master.
        if (this.pendingReason !== undefined) {
          replaced = true;
          return false;
        }
        const delayMs = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** attempt);
        this.logger.warn('revocation re-assert failed; retrying', {
          reason,
          failed: failed.length,
          error: describeError(error),
          retry_in_ms: delayMs,
        });
        await this.sleep(delayMs);
        return true;
      },
    });
    // Given up for a newer round: that round logs what it checked.
    if (replaced) return;
    this.logger.info('revocations checked against the master', { reason, remembered: items.length, reasserted: written, took_ms: this.clock.now() - started });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      (timer as { unref?: () => void }).unref?.();
      this.wake = done;
    });
  }
}

function toReassert(revocation: RememberedRevocation, now: number) {
  const expires = revocation.recordExpiresAtMs;
  const ttl = expires !== undefined && Number.isFinite(expires) ? Math.max(1, Math.round(expires - now)) : undefined;
  return {
    deviceSessionId: revocation.deviceSessionId,
    userId: revocation.userId,
    clientPublicKey: revocation.clientPublicKey,
    revokedAtMs: revocation.revokedAtMs,
    ...(ttl === undefined ? {} : { recordTtlMs: ttl }),
  };
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}

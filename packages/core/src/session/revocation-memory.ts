import { GatewayMetrics } from '../observability/metrics.js';
import { systemClock, type Clock } from '../ports/clock.port.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';

/** `GATEWAY_SESSION_REVOCATIONS_MAX_ENTRIES` default. */
export const DEFAULT_REVOCATIONS_MAX_ENTRIES = 100_000;

/**
 * A revocation the gateway saw (a revoked snapshot, or a revoked record it read), as much of
 * it as is known: enough to refuse the session and to write its revoked record and snapshot
 * again (SPEC §5.3).
 */
export interface RememberedRevocation {
  readonly deviceSessionId: string;
  /** Empty when unknown (a revoked snapshot whose `user_id` was missing or invalid). */
  readonly userId: string;
  /** Standard base64 of the client key as the snapshot held it; empty when unknown or malformed. */
  readonly clientPublicKey: string;
  /** The snapshot's `revoked_at_ms`, else when this process learned of the revocation. */
  readonly revokedAtMs: number;
  /**
   * When the session record expires on the store (epoch ms), `Infinity` when it has no
   * expiry, `undefined` while unknown.
   */
  readonly recordExpiresAtMs: number | undefined;
}

/** Options of {@link RevocationMemory}. */
export interface RevocationMemoryOptions {
  /**
   * Revocations remembered at most (`GATEWAY_SESSION_REVOCATIONS_MAX_ENTRIES`). One more
   * forgets the oldest, counted in `gateway_revocations_forgotten_total`.
   */
  readonly maxEntries: number;
  /** Least time a revocation is remembered: twice the freshness window. */
  readonly retentionMs: number;
  readonly clock?: Clock;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
}

interface Entry extends RememberedRevocation {
  readonly seenAtMs: number;
  /** `seenAtMs + retentionMs`, pushed out to the record's expiry when that is known and later. */
  readonly keepUntilMs: number;
}

/**
 * What this process knows to be revoked (SPEC §5.5): kept when the session cache is cleared,
 * so a revocation lost in a failover (the new master holds the session's older `active`
 * record) is still refused and can be written again.
 *
 * A revocation is remembered for the retention (twice the freshness window) from when it was
 * seen, or until the session record expires when its expiry is known and later; an `active`
 * snapshot of the session (the auth service re-activated it) forgets it. Memory is bounded by
 * `maxEntries`: at the bound the revocation seen longest ago is forgotten (the newest are the
 * ones a failover can lose), counted and logged, so the operator can raise the bound.
 * Expired entries are swept at most once per minute (each lookup also drops its own).
 */
export class RevocationMemory {
  /** In the order the revocations were seen (a revocation seen again moves to the end). */
  private readonly entries = new Map<string, Entry>();
  private readonly clock: Clock;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private lastSweepMs = 0;

  constructor(private readonly options: RevocationMemoryOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) throw new RangeError('RevocationMemory maxEntries must be an integer >= 1');
    if (!(options.retentionMs >= 0)) throw new RangeError('RevocationMemory retentionMs must be >= 0');
    this.clock = options.clock ?? systemClock;
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = options.logger ?? noopLogger;
  }

  /** Revocations remembered now (expired ones not swept yet included). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Remembers that `revocation.deviceSessionId` is revoked (again: it moves to the newest end,
   * its retention starts anew; a record expiry learned before is kept unless a new one is given).
   */
  remember(revocation: Omit<RememberedRevocation, 'recordExpiresAtMs'> & { recordExpiresAtMs?: number }): void {
    const now = this.clock.now();
    this.sweep(now);
    const id = revocation.deviceSessionId;
    const previous = this.entries.get(id);
    this.entries.delete(id);
    const recordExpiresAtMs = revocation.recordExpiresAtMs ?? previous?.recordExpiresAtMs;
    this.entries.set(id, {
      deviceSessionId: id,
      // What the new sighting lacks (a malformed snapshot) the earlier one may have known.
      userId: revocation.userId !== '' ? revocation.userId : (previous?.userId ?? ''),
      clientPublicKey: revocation.clientPublicKey !== '' ? revocation.clientPublicKey : (previous?.clientPublicKey ?? ''),
      revokedAtMs: revocation.revokedAtMs,
      recordExpiresAtMs,
      seenAtMs: now,
      keepUntilMs: keepUntil(now + this.options.retentionMs, recordExpiresAtMs),
    });
    while (this.entries.size > this.options.maxEntries) this.forgetOldest(now);
  }

  /**
   * Records when the session record expires (`Infinity`: never; `undefined`: no record), as
   * the store reported it after the revocation was seen. A known, later expiry extends how long
   * the revocation is remembered.
   */
  recordExpiry(deviceSessionId: string, expiresAtMs: number | undefined): void {
    const entry = this.entries.get(deviceSessionId);
    if (entry === undefined || expiresAtMs === undefined) return;
    // Same position in the order: it was not seen again.
    this.entries.set(deviceSessionId, {
      ...entry,
      recordExpiresAtMs: expiresAtMs,
      keepUntilMs: keepUntil(entry.seenAtMs + this.options.retentionMs, expiresAtMs),
    });
  }

  /** Forgets `deviceSessionId` (an `active` snapshot re-activated it). True when it was remembered. */
  forget(deviceSessionId: string): boolean {
    return this.entries.delete(deviceSessionId);
  }

  /** The remembered revocation of `deviceSessionId`, if its retention has not ended. */
  get(deviceSessionId: string): RememberedRevocation | undefined {
    const entry = this.entries.get(deviceSessionId);
    if (entry === undefined) return undefined;
    if (entry.keepUntilMs <= this.clock.now()) {
      this.entries.delete(deviceSessionId);
      return undefined;
    }
    return entry;
  }

  /** Every revocation still remembered, the oldest first. */
  list(): RememberedRevocation[] {
    const now = this.clock.now();
    const out: RememberedRevocation[] = [];
    for (const [id, entry] of this.entries) {
      if (entry.keepUntilMs <= now) this.entries.delete(id);
      else out.push(entry);
    }
    this.lastSweepMs = now;
    return out;
  }

  /** Drops expired entries, at most once a minute (O(n) then, O(1) otherwise). */
  private sweep(now: number): void {
    if (now - this.lastSweepMs < 60_000) return;
    this.lastSweepMs = now;
    for (const [id, entry] of this.entries) if (entry.keepUntilMs <= now) this.entries.delete(id);
  }

  private forgetOldest(now: number): void {
    const oldest = this.entries.values().next();
    if (oldest.done === true) return;
    const entry = oldest.value;
    this.entries.delete(entry.deviceSessionId);
    if (entry.keepUntilMs <= now) return; // expired anyway: nothing is lost
    this.metrics.revocationsForgotten.add(1);
    this.logger.warn('revocation forgotten before its retention ended (GATEWAY_SESSION_REVOCATIONS_MAX_ENTRIES reached)', {
      device_session_id: entry.deviceSessionId,
      remembered_for_ms: now - entry.seenAtMs,
      max_entries: this.options.maxEntries,
    });
  }
}

function keepUntil(retentionEndMs: number, recordExpiresAtMs: number | undefined): number {
  // A record without expiry (Infinity) cannot be outlived in bounded memory: the retention holds.
  return recordExpiresAtMs !== undefined && Number.isFinite(recordExpiresAtMs) ? Math.max(retentionEndMs, recordExpiresAtMs) : retentionEndMs;
}

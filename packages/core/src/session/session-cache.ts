import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { DeviceSession, ResolvedSession } from '../domain.js';
import { GatewayError, GatewayMessages } from '../errors.js';
import { systemClock, type Clock } from '../ports/clock.port.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { SessionStore } from '../ports/session-store.port.js';
import { ed25519PublicKeyFromRaw } from '../signing/keys.js';
import type { RevocationMemory } from './revocation-memory.js';
import { parseSessionFields } from './session-fields.js';

export interface SessionCacheOptions {
  /** Upper bound on cached sessions; the least recently used one is evicted first. */
  readonly maxEntries: number;
  /** How long a record read from the store is trusted. */
  readonly ttlMs: number;
  /**
   * What this process knows to be revoked (SPEC §5.5): consulted before the store, so a
   * revocation a failover lost on the store stays refused, and kept by `clear`. Revoked
   * snapshots and revoked records read from the store are remembered there; an `active`
   * snapshot forgets its session.
   */
  readonly revocations?: RevocationMemory;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

interface Entry {
  readonly value: ResolvedSession | null; // null: the store said "no such session"
  readonly expiresAt: number;
}

/**
 * Bounded, TTL'd cache in front of the session store (SPEC §5.1). It keeps the parsed
 * public-key object so the hot path does no Redis call and no key parsing; snapshots from the
 * session-events stream replace entries (last wins).
 *
 * A lookup that was in flight while a snapshot for the same session was applied returns the
 * snapshot, never the older record it read, so a revoke can't be undone by a slow read.
 */
export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<ResolvedSession | null>>();
  /**
   * Snapshots applied while a store read of the same session was in flight: they are newer
   * than what that read returns. Only sessions with a read in flight have an entry, so this
   * stays bounded (a per-session version for every snapshot ever applied would not).
   */
  private readonly overtaken = new Map<string, ResolvedSession>();
  /** Bumped by `clear`, so reads that raced it do not repopulate the cache. */
  private epoch = 0;
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(
    private readonly store: SessionStore,
    private readonly options: SessionCacheOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? noopLogger;
  }

  /** Number of cached entries (including negative ones). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The session for `deviceSessionId`, or `undefined` if unknown (or malformed).
   * Rejects with `UNAVAILABLE` `session store unavailable` when the store cannot answer.
   */
  async lookup(deviceSessionId: string): Promise<ResolvedSession | undefined> {
    const cached = this.peekEntry(deviceSessionId);
    if (cached !== undefined) return cached.value ?? undefined;
    const remembered = this.remembered(deviceSessionId);
    if (remembered !== undefined) return remembered;
    let pending = this.inflight.get(deviceSessionId);
    if (pending === undefined) {
      pending = this.load(deviceSessionId);
      this.inflight.set(deviceSessionId, pending);
      const settled = () => {
        this.inflight.delete(deviceSessionId);
        this.overtaken.delete(deviceSessionId);
      };
      void pending.then(settled, settled);
    }
    return (await pending) ?? undefined;
  }

  /**
   * The cached session without touching the store (expired entries count as absent), or the
   * remembered revocation of a session that is not cached.
   */
  peek(deviceSessionId: string): ResolvedSession | undefined {
    const entry = this.peekEntry(deviceSessionId);
    if (entry !== undefined) return entry.value ?? undefined;
    return this.remembered(deviceSessionId);
  }

  /**
   * Applies a session snapshot (last wins). Returns the resolved session. A revoked one is
   * remembered (SPEC §5.5); an active one forgets a remembered revocation of the session.
   */
  apply(session: DeviceSession): ResolvedSession {
    if (session.status === 'revoked') this.rememberRevoked(session);
    else this.options.revocations?.forget(session.deviceSessionId);
    return this.applyResolved({ session, publicKey: ed25519PublicKeyFromRaw(session.clientPublicKey) });
  }

  /**
   * Caches `deviceSessionId` as revoked without a usable client key: for a revoked snapshot
   * whose other fields are malformed (fail closed). Requests are refused at the revoked check,
   * before any signature would be verified; the key held is one nobody has the private half of.
   */
  revoke(deviceSessionId: string, userId: string): ResolvedSession {
    const session: DeviceSession = { deviceSessionId, userId, status: 'revoked', clientPublicKey: new Uint8Array(0) };
    this.rememberRevoked(session);
    return this.applyResolved({ session, publicKey: unusableKey() });
  }

  private rememberRevoked(session: DeviceSession): void {
    this.options.revocations?.remember({
      deviceSessionId: session.deviceSessionId,
      userId: session.userId,
      clientPublicKey: session.clientPublicKey.length === 0 ? '' : Buffer.from(session.clientPublicKey).toString('base64'),
      revokedAtMs: session.revokedAtMs ?? this.clock.now(),
    });
  }

  /** A remembered revocation as a revoked session (cached again, so the next peek is one lookup). */
  private remembered(deviceSessionId: string): ResolvedSession | undefined {
    const revocation = this.options.revocations?.get(deviceSessionId);
    if (revocation === undefined) return undefined;
    const session: DeviceSession = {
      deviceSessionId,
      userId: revocation.userId,
      status: 'revoked',
      clientPublicKey: new Uint8Array(0),
      revokedAtMs: revocation.revokedAtMs,
    };
    // Refused at the revoked check, before any signature is verified: no usable key needed.
    const resolved: ResolvedSession = { session, publicKey: unusableKey() };
    this.put(deviceSessionId, resolved);
    return resolved;
  }

  private applyResolved(resolved: ResolvedSession): ResolvedSession {
    const id = resolved.session.deviceSessionId;
    if (this.inflight.has(id)) this.overtaken.set(id, resolved);
    this.put(id, resolved);
    return resolved;
  }

  /**
   * Drops every entry (after the session-events subscriber reconnected, snapshots may be
   * missed). Remembered revocations stay: they are what the gateway knows to be revoked.
   */
  clear(): void {
    this.entries.clear();
    this.overtaken.clear();
    this.epoch += 1;
  }

  private peekEntry(id: string): Entry | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.clock.now()) {
      this.entries.delete(id);
      return undefined;
    }
    // Refresh recency so eviction drops the least recently used entry, as documented.
    this.entries.delete(id);
    this.entries.set(id, entry);
    return entry;
  }

  private async load(id: string): Promise<ResolvedSession | null> {
    const epoch = this.epoch;
    let fields;
    try {
      fields = await this.store.getRecord(id);
    } catch (cause) {
      throw GatewayError.unavailable(GatewayMessages.sessionStoreUnavailable, cause);
    }
    // A snapshot applied while we were reading is newer than what we read (even if its cache
    // entry was evicted meanwhile): never let the older record overwrite it.
    const snapshot = this.overtaken.get(id);
    if (snapshot !== undefined) return snapshot;
    // Known to be revoked: a store that says otherwise lost the revocation (a failover).
    const remembered = this.remembered(id);
    if (remembered !== undefined) return remembered;
    let value: ResolvedSession | null = null;
    if (fields !== undefined) {
      const parsed = parseSessionFields(fields);
      if (!parsed.ok) {
        this.logger.warn('malformed session record', { device_session_id: id, reason: parsed.reason });
      } else if (parsed.session.deviceSessionId !== id) {
        this.logger.warn('malformed session record', { device_session_id: id, reason: 'device_session_id does not match key' });
      } else {
        value = { session: parsed.session, publicKey: ed25519PublicKeyFromRaw(parsed.session.clientPublicKey) };
        if (parsed.session.status === 'revoked') this.rememberRevoked(parsed.session);
      }
    }
    if (epoch === this.epoch) this.put(id, value);
    return value;
  }

  private put(id: string, value: ResolvedSession | null): void {
    this.entries.delete(id);
    this.entries.set(id, { value, expiresAt: this.clock.now() + this.options.ttlMs });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }
}

let unusable: KeyObject | undefined;
/** A freshly generated public key whose private half was never kept. */
function unusableKey(): KeyObject {
  unusable ??= generateKeyPairSync('ed25519').publicKey;
  return unusable;
}

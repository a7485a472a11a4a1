import type { RawFields } from '../domain.js';
import type { ReassertOutcome, RevocationStore, RevocationToReassert } from '../ports/revocation-store.port.js';
import type { InMemoryEventStream } from './in-memory-event-stream.js';
import type { InMemorySessionStore } from './in-memory-session-store.js';

/** The record fields of SPEC §5.1, the ones a snapshot carries. */
const SNAPSHOT_FIELDS = ['device_session_id', 'user_id', 'status', 'client_public_key', 'revoked_at_ms'] as const;

/**
 * Writes revocations back into an {@link InMemorySessionStore} and appends their snapshots to
 * an {@link InMemoryEventStream} (the session-events stream), as `RedisRevocationStore` does on
 * Redis. Records never expire here. `failing` makes every call reject like an unreachable store.
 */
export class InMemoryRevocationStore implements RevocationStore {
  failing = false;
  /** Calls of `reassert` that wrote. */
  writes = 0;

  constructor(
    private readonly sessions: InMemorySessionStore,
    private readonly stream: InMemoryEventStream,
  ) {}

  async recordTtl(deviceSessionId: string): Promise<number | undefined> {
    if (this.failing) throw new Error('revocation store unreachable');
    return this.sessions.peekRecord(deviceSessionId) === undefined ? undefined : Infinity;
  }

  async reassert(revocation: RevocationToReassert): Promise<ReassertOutcome> {
    if (this.failing) throw new Error('revocation store unreachable');
    const id = revocation.deviceSessionId;
    const record: Record<string, string> = { ...this.sessions.peekRecord(id) };
    if (record['status'] === 'revoked') return 'present';
    record['device_session_id'] = id;
    record['status'] = 'revoked';
    record['revoked_at_ms'] = String(revocation.revokedAtMs);
    if (revocation.userId !== '' && (record['user_id'] ?? '') === '') record['user_id'] = revocation.userId;
    if (revocation.clientPublicKey !== '' && (record['client_public_key'] ?? '') === '') record['client_public_key'] = revocation.clientPublicKey;
    this.sessions.set(id, record);
    this.writes += 1;
    const snapshot: Record<string, string> = {};
    for (const name of SNAPSHOT_FIELDS) if (record[name] !== undefined) snapshot[name] = record[name];
    this.stream.append(snapshot satisfies RawFields);
    return 'written';
  }
}

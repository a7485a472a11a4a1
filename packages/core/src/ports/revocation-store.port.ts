/** A revocation to write again (SPEC §5.3): what the gateway remembers of it. */
export interface RevocationToReassert {
  readonly deviceSessionId: string;
  /** Empty when unknown: the record's own `user_id` is kept, none is invented. */
  readonly userId: string;
  /** Standard base64 of the client key; empty when unknown (the record's own is kept). */
  readonly clientPublicKey: string;
  readonly revokedAtMs: number;
  /**
   * How long a record created by the re-assert should live (ms), when the original record's
   * expiry is known; `undefined`: no expiry is set.
   */
  readonly recordTtlMs?: number;
}

/**
 * `written`: the store lacked the revoked record; it was written and its revoked snapshot
 * appended. `present`: the store's record already said `revoked`; nothing was written.
 */
export type ReassertOutcome = 'written' | 'present';

/**
 * Writes back revocations a failover lost (SPEC §5.3, §5.6). The gateway never writes session
 * records otherwise: the auth service owns them.
 */
export interface RevocationStore {
  /**
   * Remaining life of the session record in milliseconds: `Infinity` when it has no expiry,
   * `undefined` when there is no record. Rejects when the store cannot answer.
   */
  recordTtl(deviceSessionId: string): Promise<number | undefined>;
  /**
   * Unless the record already says `status=revoked`: sets `status=revoked`, `revoked_at_ms`
   * and `device_session_id` on it (filling `user_id` and `client_public_key` only where the
   * record has none), then appends the revoked snapshot (SPEC §5.3) built from the record, in
   * that order. The check and the record write are one atomic step, so of several gateways
   * re-asserting at once one writes. Idempotent. Rejects when the store cannot answer (the
   * caller retries).
   */
  reassert(revocation: RevocationToReassert): Promise<ReassertOutcome>;
}

/** Outcome of a replay reservation: an expected value, not an exception. */
export type ReplayReservation = 'reserved' | 'duplicate';

/** Shared replay reservations (SPEC §5.2). */
export interface ReplayStore {
  /**
   * Atomically reserves `(deviceSessionId, requestId)` for `ttlMs` milliseconds.
   * Resolves `'reserved'` if this call created the reservation, `'duplicate'` if it already
   * existed. Must reject when the reservation cannot be confirmed; the core then fails closed
   * with `UNAVAILABLE` `replay store unavailable`.
   */
  reserve(deviceSessionId: string, requestId: string, ttlMs: number): Promise<ReplayReservation>;
}

/**
 * Outcome of a replay reservation: an expected value, not an exception.
 *
 * - `'reserved'`: this call created the reservation (and, where the store confirms durability,
 *   it is confirmed): the request may run.
 * - `'duplicate'`: the reservation already existed: a replay.
 * - `'not_replicated'`: the reservation was written but the store could not confirm it durable
 *   (e.g. Redis `WAIT` reported fewer replicas than required), so a failover could lose it and
 *   the request could then run twice. The store has withdrawn it (best effort): the request
 *   did not run and may be sent again with the same request id.
 */
export type ReplayReservation = 'reserved' | 'duplicate' | 'not_replicated';

/** Shared replay reservations (SPEC §5.2). */
export interface ReplayStore {
  /**
   * Atomically reserves `(deviceSessionId, requestId)` for `ttlMs` milliseconds.
   * Resolves `'reserved'` if this call created the reservation, `'duplicate'` if it already
   * existed, `'not_replicated'` if it was created but not confirmed durable (and then withdrawn;
   * the core answers `UNAVAILABLE` `replay store not durable`). Must reject when the reservation
   * cannot be confirmed at all; the core then fails closed with `UNAVAILABLE`
   * `replay store unavailable`.
   */
  reserve(deviceSessionId: string, requestId: string, ttlMs: number): Promise<ReplayReservation>;
  /**
   * Optional: withdraws a reservation this process just made for a command that then never
   * ran (its deadline passed before the downstream call), so the request_id can be used again.
   */
  release?(deviceSessionId: string, requestId: string): Promise<void>;
}

/**
 * The key of a reservation below the store's own prefix (SPEC §5.2):
 * `device_session_id + "/" + request_id`. `/` is in neither id's alphabet
 * (`[A-Za-z0-9._:-]`), so two different pairs of valid ids never share a key (with `:` as the
 * separator, session `a` + request `b:c` and session `a:b` + request `c` did).
 */
export function replayKey(deviceSessionId: string, requestId: string): string {
  return `${deviceSessionId}/${requestId}`;
}

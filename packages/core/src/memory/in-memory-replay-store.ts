import { systemClock, type Clock } from '../ports/clock.port.js';
import { replayKey, type ReplayReservation, type ReplayStore } from '../ports/replay-store.port.js';

/**
 * In-memory replay reservations with expiry. `failing` makes reservations reject (store
 * unreachable); `unreplicated` makes a new reservation end `'not_replicated'` and leaves nothing
 * reserved (a Redis store whose `WAIT` got too few replicas, SPEC §5.2); a replay is still
 * `'duplicate'`.
 */
export class InMemoryReplayStore implements ReplayStore {
  private readonly reservations = new Map<string, number>();
  failing = false;
  unreplicated = false;

  constructor(private readonly clock: Clock = systemClock) {}

  async reserve(deviceSessionId: string, requestId: string, ttlMs: number): Promise<ReplayReservation> {
    if (this.failing) throw new Error('replay store unreachable');
    const key = replayKey(deviceSessionId, requestId);
    const now = this.clock.now();
    const expires = this.reservations.get(key);
    if (expires !== undefined && expires > now) return 'duplicate';
    if (this.unreplicated) {
      this.reservations.delete(key);
      return 'not_replicated';
    }
    this.reservations.set(key, now + ttlMs);
    if (this.reservations.size > 10_000) this.sweep(now);
    return 'reserved';
  }

  async release(deviceSessionId: string, requestId: string): Promise<void> {
    if (this.failing) throw new Error('replay store unreachable');
    this.reservations.delete(replayKey(deviceSessionId, requestId));
  }

  private sweep(now: number): void {
    for (const [key, expires] of this.reservations) if (expires <= now) this.reservations.delete(key);
  }
}

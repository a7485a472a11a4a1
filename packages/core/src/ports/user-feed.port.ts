/**
 * A per-user event source (routed fan-out, SPEC §9): the process receives only the events of
 * users it holds streams for. The hub calls `follow` when a stream of the user is registered
 * and `unfollow` when one closes; the feed counts them, subscribing on the first and
 * unsubscribing after the last. A broadcast source (the client-events stream) needs no feed.
 */
export interface UserFeed {
  /**
   * One more local stream of `userId`. Resolves once events published from now on will reach
   * the hub; rejects when the feed cannot subscribe (the subscribe then fails closed).
   */
  follow(userId: string): Promise<void>;
  /** One local stream of `userId` closed (called once per `follow`). */
  unfollow(userId: string): void;
}

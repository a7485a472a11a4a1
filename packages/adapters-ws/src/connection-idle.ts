/** What a {@link ConnectionIdle} calls when a bound passed (the connection itself: no closure per connection). */
export interface IdleOwner {
  /** No complete frame came within `firstFrameTimeoutMs` of the upgrade. */
  noFrameReceived(): void;
  /** No call was in flight for `idleTimeoutMs`. */
  idleTimedOut(): void;
}

/** The two bounds (the server's settings object, shared by every connection). */
export interface IdleBounds {
  readonly firstFrameTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/**
 * The two time bounds of an upgraded connection that does nothing (SPEC §2.2): it must send a
 * complete frame within `firstFrameMs` of the upgrade, and afterwards it may stay without a
 * call in flight (a command or an open stream) for at most `idleMs`. Pings and pongs are not
 * frames here. One timer per connection, re-armed lazily (a busy connection does not restart
 * it per call). It holds the shared bounds and its owner, nothing per connection beyond its
 * timer and state.
 */
export class ConnectionIdle {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private framed = false;
  private stopped = false;
  /** `performance.now()` since when the connection has had no call, or undefined while it has one. */
  private idleSince: number | undefined;

  constructor(
    private readonly bounds: IdleBounds,
    private readonly owner: IdleOwner,
  ) {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.framed) this.owner.noFrameReceived();
    }, bounds.firstFrameTimeoutMs);
  }

  /** After each complete frame was handled: `calls` is the number of calls now in flight. */
  frame(calls: number): void {
    if (this.stopped) return;
    if (!this.framed) {
      this.framed = true;
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.calls(calls);
  }

  /** The number of calls in flight changed (a call ended). */
  calls(calls: number): void {
    if (!this.framed || this.stopped) return;
    if (calls > 0) {
      this.idleSince = undefined;
      return;
    }
    if (this.idleSince === undefined) this.idleSince = performance.now();
    this.arm(this.bounds.idleTimeoutMs);
  }

  /** The connection closed: no timer stays behind. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.idleSince === undefined) return;
      const left = this.idleSince + this.bounds.idleTimeoutMs - performance.now();
      if (left > 0) this.arm(left);
      else this.owner.idleTimedOut();
    }, ms);
  }
}

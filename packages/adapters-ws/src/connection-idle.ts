/**
 * The two time bounds of an upgraded connection that does nothing (SPEC §2.2): it must send a
 * complete frame within `firstFrameMs` of the upgrade, and afterwards it may stay without a
 * call in flight (a command or an open stream) for at most `idleMs`. Pings and pongs are not
 * frames here. One timer per connection, re-armed lazily (a busy connection does not restart
 * it per call).
 */
export class ConnectionIdle {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private framed = false;
  private stopped = false;
  /** `performance.now()` since when the connection has had no call, or undefined while it has one. */
  private idleSince: number | undefined;

  constructor(
    private readonly bounds: { readonly firstFrameMs: number; readonly idleMs: number },
    private readonly onNoFrame: () => void,
    private readonly onIdle: () => void,
  ) {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.framed) this.onNoFrame();
    }, bounds.firstFrameMs);
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
    this.arm(this.bounds.idleMs);
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
      const left = this.idleSince + this.bounds.idleMs - performance.now();
      if (left > 0) this.arm(left);
      else this.onIdle();
    }, ms);
  }
}

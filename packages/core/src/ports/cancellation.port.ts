/**
 * A client giving up on a call, as a transport reports it: cheaper than an `AbortSignal` (no
 * `EventTarget`, no controller per call) on the command hot path. A downstream that needs a
 * real `AbortSignal` (to hand to `fetch`, say) reads `DownstreamCallContext.signal`, made from
 * this on first read.
 */
export interface Cancellation {
  /** Whether the client already gave up. */
  readonly cancelled: boolean;
  /**
   * Calls `listener` once when the client gives up (at once if it already did). Returns a
   * function that removes the listener (call it once the work is done).
   */
  onCancel(listener: () => void): () => void;
}

const noop = (): void => undefined;

/** The {@link Cancellation} a transport triggers with {@link CancellationSource.cancel}. */
export class CancellationSource implements Cancellation {
  private done = false;
  // One listener is the usual case (the downstream call): no array for it.
  private listeners: (() => void) | Array<() => void> | undefined;

  get cancelled(): boolean {
    return this.done;
  }

  onCancel(listener: () => void): () => void {
    if (this.done) {
      listener();
      return noop;
    }
    const current = this.listeners;
    if (current === undefined) this.listeners = listener;
    else if (typeof current === 'function') this.listeners = [current, listener];
    else current.push(listener);
    return () => this.remove(listener);
  }

  /** Marks the call cancelled and runs every listener once (later calls do nothing). */
  cancel(): void {
    if (this.done) return;
    this.done = true;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (typeof listeners === 'function') listeners();
    else if (listeners !== undefined) for (const listener of listeners) listener();
  }

  private remove(listener: () => void): void {
    const current = this.listeners;
    if (current === listener) this.listeners = undefined;
    else if (Array.isArray(current)) {
      const at = current.indexOf(listener);
      if (at >= 0) current.splice(at, 1);
    }
  }
}

/** An `AbortSignal` that aborts when `cancellation` does (already aborted if it did). */
export function abortSignalOf(cancellation: Cancellation): AbortSignal {
  const controller = new AbortController();
  cancellation.onCancel(() => controller.abort());
  return controller.signal;
}

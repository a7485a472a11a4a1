import { status as GrpcStatus, type ClientReadableStream, type StatusObject } from '@grpc/grpc-js';
import { toClientError } from './errors.js';

const HIGH_WATER = 16;
const LOW_WATER = 4;

/**
 * Pulls messages from a grpc-js server stream one at a time, with backpressure (the call is
 * paused while the app is not reading, so gRPC flow control reaches the gateway). Ends
 * after the last message: normally for `OK`, with `GatewayStatusError` otherwise.
 * Unlike the stream's own async iterator, no message received before an error status is lost.
 */
export class ServerStreamReader<T> {
  private readonly queue: T[] = [];
  private status: StatusObject | undefined;
  private ended = false;
  private paused = false;
  private wake: (() => void) | undefined;

  constructor(private readonly call: ClientReadableStream<T>) {
    call.on('data', (message: T) => {
      this.queue.push(message);
      if (this.queue.length >= HIGH_WATER && !this.paused) {
        this.paused = true;
        call.pause();
      }
      this.notify();
    });
    call.on('end', () => {
      this.ended = true;
      this.notify();
    });
    // Reported through 'status' below; the listener keeps an error status from throwing.
    call.on('error', () => undefined);
    call.on('status', (status: StatusObject) => {
      this.status = status;
      this.notify();
    });
  }

  /** The next message, or `undefined` once the stream ended with `OK`. */
  async next(): Promise<T | undefined> {
    for (;;) {
      const message = this.queue.shift();
      if (message !== undefined) {
        if (this.paused && this.queue.length <= LOW_WATER) {
          this.paused = false;
          this.call.resume();
        }
        return message;
      }
      if (this.ended && this.status !== undefined) {
        if (this.status.code === GrpcStatus.OK) return undefined;
        // The status's trailers go along: a rate-limited open is a RateLimitedError with its retry-after.
        throw toClientError(Object.assign(new Error(this.status.details), { code: this.status.code, details: this.status.details, metadata: this.status.metadata }));
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Cancels the call (harmless once it ended). */
  cancel(): void {
    this.call.cancel();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

import type { Context } from '@opentelemetry/api';
import type { DownstreamCommand, DownstreamResult } from '../domain.js';
import type { Cancellation } from './cancellation.port.js';

/** Per-call context handed to a downstream. */
export interface DownstreamCallContext {
  /** Absolute deadline (epoch ms) the call must finish by; always set by the core. */
  readonly deadlineMs: number;
  /**
   * Aborted when the client gave up (cancelled or its deadline passed). With a transport that
   * reports a {@link Cancellation}, made on first read; prefer `cancellation` when it is set.
   */
  readonly signal?: AbortSignal;
  /** The client giving up, when the transport reports it so (cheaper than `signal`). */
  readonly cancellation?: Cancellation;
  /**
   * The caller's OpenTelemetry context (its span and W3C trace), for the downstream to
   * propagate. Passed explicitly so that propagation works without a global context manager.
   */
  readonly traceContext?: Context;
}

/**
 * A business service that executes commands. Implementations reject with a `GatewayError`
 * of code `unavailable` or `deadline_exceeded` to have that status passed through to the
 * client; any other rejection becomes `INTERNAL` `downstream command failed` (SPEC §4).
 */
export interface CommandDownstream {
  /** Human-readable target for logs, e.g. `host:port`. */
  readonly target: string;
  execute(command: DownstreamCommand, context: DownstreamCallContext): Promise<DownstreamResult>;
}

/** Chooses the downstream for a message type. */
export interface CommandRouter {
  /** The downstream for `messageType`, or `undefined` for `UNIMPLEMENTED`. */
  route(messageType: string): CommandDownstream | undefined;
}

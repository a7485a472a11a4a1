import type { ResolvedSession } from '../domain.js';
import { GatewayError, GatewayMessages } from '../errors.js';
import type { Clock } from '../ports/clock.port.js';
import type { ReplayReservation, ReplayStore } from '../ports/replay-store.port.js';
import type { SessionCache } from '../session/session-cache.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { systemClock } from '../ports/clock.port.js';

/** Shared steps 2–5 and 7 of the request pipeline (SPEC §4). */
export interface PipelineDeps {
  readonly sessions: SessionCache;
  readonly replay: ReplayStore;
  readonly clock: Clock;
  readonly metrics: GatewayMetrics;
  readonly freshnessWindowMs: number;
}

export const DEFAULT_FRESHNESS_WINDOW_MS = 5 * 60_000;

/** The pipeline dependencies from a service's options, with the defaults applied. */
export function pipelineDeps(options: {
  readonly sessions: SessionCache;
  readonly replay: ReplayStore;
  readonly clock?: Clock;
  readonly metrics?: GatewayMetrics;
  readonly freshnessWindowMs?: number;
}): PipelineDeps {
  return {
    sessions: options.sessions,
    replay: options.replay,
    clock: options.clock ?? systemClock,
    metrics: options.metrics ?? new GatewayMetrics(),
    freshnessWindowMs: options.freshnessWindowMs ?? DEFAULT_FRESHNESS_WINDOW_MS,
  };
}

/** Step 2: freshness window. */
export function checkFreshness(deps: PipelineDeps, timestampMs: number): void {
  if (!(Math.abs(deps.clock.now() - timestampMs) <= deps.freshnessWindowMs)) {
    throw GatewayError.unauthenticated(GatewayMessages.staleRequest);
  }
}

/** Steps 3–4: the session exists and is not revoked. */
export async function resolveActiveSession(deps: PipelineDeps, deviceSessionId: string): Promise<ResolvedSession> {
  return activeSession(await deps.sessions.lookup(deviceSessionId));
}

/** Steps 3–4 on a looked-up session: refuses an unknown (undefined) or revoked one. */
export function activeSession(resolved: ResolvedSession | undefined): ResolvedSession {
  if (resolved === undefined) throw GatewayError.unauthenticated(GatewayMessages.unknownSession);
  if (resolved.session.status === 'revoked') throw GatewayError.revoked();
  return resolved;
}

// One frozen label set per outcome: no attribute object per reservation.
const OUTCOME = {
  ok: Object.freeze({ outcome: 'ok' }),
  replay: Object.freeze({ outcome: 'replay' }),
  notReplicated: Object.freeze({ outcome: 'not_replicated' }),
  unavailable: Object.freeze({ outcome: 'unavailable' }),
} as const;

/**
 * Step 8: replay reservation; fails closed. Every outcome is counted in
 * `gateway_replay_reservations_total{outcome}`. A reservation the store could not confirm
 * durable (`not_replicated`, SPEC §5.2) is `UNAVAILABLE` `replay store not durable`: the request
 * does not run, and the store withdrew the reservation so the same request id may be sent again.
 */
export async function reserveRequest(deps: PipelineDeps, deviceSessionId: string, requestId: string): Promise<void> {
  let outcome;
  try {
    outcome = await deps.replay.reserve(deviceSessionId, requestId, 2 * deps.freshnessWindowMs);
  } catch (cause) {
    throw reservationUnavailable(deps, cause);
  }
  checkReservation(deps, outcome);
}

/** A reservation that could not be made (the store did not answer): counted; fail closed. */
export function reservationUnavailable(deps: PipelineDeps, cause: unknown): GatewayError {
  deps.metrics.replayReservations.add(1, OUTCOME.unavailable);
  return GatewayError.unavailable(GatewayMessages.replayStoreUnavailable, cause);
}

/**
 * Step 8's outcome, however the reservation was made (`ReplayStore.reserve`, or a rate limiter
 * that reserves in its own round trip): counted; anything but `reserved` throws.
 */
export function checkReservation(deps: PipelineDeps, outcome: ReplayReservation): void {
  switch (outcome) {
    case 'reserved':
      deps.metrics.replayReservations.add(1, OUTCOME.ok);
      return;
    case 'not_replicated':
      deps.metrics.replayReservations.add(1, OUTCOME.notReplicated);
      throw GatewayError.unavailable(GatewayMessages.replayNotDurable);
    default:
      deps.metrics.replayReservations.add(1, OUTCOME.replay);
      deps.metrics.replayRejections.add(1);
      throw new GatewayError('already_exists', GatewayMessages.replay);
  }
}

/**
 * After the last await of the pipeline: a revoke snapshot may have been applied meanwhile.
 * Checked synchronously right before the work starts, so no revoke can slip in between.
 */
export function recheckNotRevoked(deps: PipelineDeps, deviceSessionId: string): void {
  if (deps.sessions.peek(deviceSessionId)?.session.status === 'revoked') throw GatewayError.revoked();
}

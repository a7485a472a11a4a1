import type { CommandRequest, CommandResult, SubscribeRequest } from '../domain.js';
import { ClientEventsHandler } from '../handlers/client-events-handler.js';
import { SessionEventsHandler } from '../handlers/session-events-handler.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { RequestLogLimiter } from '../observability/request-log-limiter.js';
import type { Clock } from '../ports/clock.port.js';
import type { CommandRouter } from '../ports/command-router.port.js';
import type { EventHistory } from '../ports/event-history.port.js';
import { noopLogger, type Logger } from '../ports/logger.port.js';
import type { RateLimiter } from '../ports/rate-limiter.port.js';
import type { ReplayStore } from '../ports/replay-store.port.js';
import { InMemoryRateLimiter } from '../memory/in-memory-rate-limiter.js';
import type { RateLimitRule } from '../rate-limit/rate-limit-rules.js';
import { RateLimits } from '../rate-limit/rate-limits.js';
import type { ResponseSigner } from '../ports/response-signer.port.js';
import type { RevocationStore } from '../ports/revocation-store.port.js';
import type { SessionStore } from '../ports/session-store.port.js';
import type { UserFeed } from '../ports/user-feed.port.js';
import { DEFAULT_PUSH_MAX_STREAMS_PER_SESSION, DEFAULT_PUSH_STREAM_BUFFER_BYTES, PushHub, type PushSink } from '../push/push-hub.js';
import { StaticRouter } from '../routing/static-router.js';
import { CommandService, DEFAULT_DOWNSTREAM_TIMEOUT_MS, DEFAULT_MAX_PAYLOAD_BYTES, type CallContext } from '../services/command-service.js';
import { DEFAULT_RESUME_MAX_EVENTS, DEFAULT_RESUME_MAX_SCAN, SubscriptionService } from '../services/subscription-service.js';
import { DEFAULT_PUSH_MAX_EVENT_BYTES } from '../handlers/client-event.js';
import { DEFAULT_FRESHNESS_WINDOW_MS } from '../services/pipeline.js';
import { DEFAULT_REVOCATIONS_MAX_ENTRIES, RevocationMemory } from '../session/revocation-memory.js';
import { RevocationReasserter } from '../session/revocation-reasserter.js';
import { SessionCache } from '../session/session-cache.js';
import type { ShutdownStep } from './shutdown.js';
import { openStream, type OpenedStream } from './stream-opening.js';

/** `GATEWAY_SESSION_CACHE_MAX_ENTRIES` default. */
export const DEFAULT_SESSION_CACHE_MAX_ENTRIES = 100_000;
/** `GATEWAY_SESSION_CACHE_TTL` default (30 s). */
export const DEFAULT_SESSION_CACHE_TTL_MS = 30_000;
/** `GATEWAY_PUSH_STREAM_BUFFER` default. */
export const DEFAULT_PUSH_STREAM_BUFFER = 256;

/** The adapters the core runs on (the hexagon's ports). */
export interface GatewayCorePorts {
  /** Session records (SPEC §5.1): Redis, or `InMemorySessionStore` from `@edge-gateway/core/memory`. */
  readonly sessions: SessionStore;
  /** Replay reservations (SPEC §5.2). */
  readonly replay: ReplayStore;
  /**
   * Writes back revocations a failover lost (SPEC §5.3): Redis, or `InMemoryRevocationStore`.
   * Without it revocations are still remembered and refused, never written back.
   */
  readonly revocations?: RevocationStore;
  /** Signs command results and events. */
  readonly signer: ResponseSigner;
  /** Chooses the downstream per message type; default: no routes (every command `UNIMPLEMENTED`). */
  readonly router?: CommandRouter;
  /** Client-events history for `resume_after_event_id`; without it every resume is incomplete. */
  readonly history?: EventHistory;
  /**
   * A per-user event source (routed fan-out, SPEC §9): the hub tells it which users this
   * process holds streams for. Absent for a broadcast source (the client-events stream).
   */
  readonly feed?: UserFeed;
  /**
   * Where the rate limits are counted (only used with `GatewayCoreOptions.rateLimits`): default
   * an `InMemoryRateLimiter` (per process); the Redis one counts across the fleet.
   */
  readonly rateLimiter?: RateLimiter;
  readonly clock?: Clock;
  /** Default: drops every line. Components log through `child({ component })`. */
  readonly logger?: Logger;
  /** Default: instruments on the global OpenTelemetry meter (no-ops without an SDK). */
  readonly metrics?: GatewayMetrics;
}

/** Limits and tuning; every field has the gateway binary's default. */
export interface GatewayCoreOptions {
  /** Sessions cached at most (default {@link DEFAULT_SESSION_CACHE_MAX_ENTRIES}). */
  readonly sessionCacheMaxEntries?: number;
  /** How long a session record read from the store is trusted (default {@link DEFAULT_SESSION_CACHE_TTL_MS}). */
  readonly sessionCacheTtlMs?: number;
  /** Revocations remembered at most (default {@link DEFAULT_REVOCATIONS_MAX_ENTRIES}; SPEC §5.5). */
  readonly revocationsMaxEntries?: number;
  /** Events queued per push stream before it overflows (default {@link DEFAULT_PUSH_STREAM_BUFFER}). */
  readonly pushStreamBuffer?: number;
  /** Payload bytes queued per push stream before it overflows (default 4 MiB). */
  readonly pushStreamBufferBytes?: number;
  /** Open push streams per device session; one more replaces the oldest (default 4). */
  readonly pushMaxStreamsPerSession?: number;
  /** Request freshness window (default 5 minutes). */
  readonly freshnessWindowMs?: number;
  /** Largest command payload (default 1 MiB). */
  readonly maxPayloadBytes?: number;
  /** Downstream budget when the caller set no deadline (default 10 s). */
  readonly downstreamTimeoutMs?: number;
  /** Events replayed on resume at most (default 1000). */
  readonly resumeMaxEvents?: number;
  /** History entries read on resume at most (default 10000). */
  readonly resumeMaxScan?: number;
  /**
   * Payload bytes replayed on resume at most (`GATEWAY_PUSH_RESUME_MAX_BYTES`, default
   * `pushStreamBufferBytes`: a resume never queues more than a live stream may hold).
   */
  readonly resumeMaxBytes?: number;
  /**
   * Largest decoded client-event payload (`GATEWAY_PUSH_MAX_EVENT_BYTES`, default 1 MiB):
   * larger entries are dropped as malformed, live and on resume.
   */
  readonly pushMaxEventBytes?: number;
  /**
   * Subscribe checks and client-event signatures off the event loop (default true); `false`
   * keeps every Ed25519 operation on the event loop, commands included.
   */
  readonly asyncCrypto?: boolean;
  /**
   * Command verify and sign in the threadpool when the event loop is saturated (default false;
   * see `CommandServiceOptions.asyncCrypto`). Ignored when `asyncCrypto` is false.
   */
  readonly commandAsyncCrypto?: boolean;
  /**
   * Rate limit rules (`parseRateLimitRules('session=20/s:40,…')`, SPEC §4 step 7, §7): checked
   * for every command and stream open after its signature, before its replay reservation.
   * Default: none.
   */
  readonly rateLimits?: readonly RateLimitRule[];
}

/**
 * Every default of {@link GatewayCoreOptions}, by option name: what `createGatewayCore` uses for
 * an option left out (the gateway binary's settings table takes its defaults from here, SPEC §7).
 * `resumeMaxBytes` is not listed: it defaults to the `pushStreamBufferBytes` in use.
 */
export const GATEWAY_CORE_DEFAULTS: Readonly<Required<Omit<GatewayCoreOptions, 'resumeMaxBytes'>>> = Object.freeze({
  sessionCacheMaxEntries: DEFAULT_SESSION_CACHE_MAX_ENTRIES,
  sessionCacheTtlMs: DEFAULT_SESSION_CACHE_TTL_MS,
  revocationsMaxEntries: DEFAULT_REVOCATIONS_MAX_ENTRIES,
  pushStreamBuffer: DEFAULT_PUSH_STREAM_BUFFER,
  pushStreamBufferBytes: DEFAULT_PUSH_STREAM_BUFFER_BYTES,
  pushMaxStreamsPerSession: DEFAULT_PUSH_MAX_STREAMS_PER_SESSION,
  freshnessWindowMs: DEFAULT_FRESHNESS_WINDOW_MS,
  maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
  downstreamTimeoutMs: DEFAULT_DOWNSTREAM_TIMEOUT_MS,
  resumeMaxEvents: DEFAULT_RESUME_MAX_EVENTS,
  resumeMaxScan: DEFAULT_RESUME_MAX_SCAN,
  pushMaxEventBytes: DEFAULT_PUSH_MAX_EVENT_BYTES,
  asyncCrypto: true,
  commandAsyncCrypto: false,
  rateLimits: Object.freeze([]),
});

/**
 * An event feed the core stops at shutdown: anything with `close()` (the shutdown verb of every
 * package), or, deprecated, `stop()`.
 */
export type ClosableEventSource = { close(): Promise<unknown> | unknown } | { /** @deprecated Name it `close`. */ stop(): Promise<unknown> | unknown };

/** What an app stops around the core, in `GatewayCore.shutdownSteps` order. */
export interface ShutdownPlan {
  /** Runs first (e.g. `/readyz` turns 503), together with refusing new requests. */
  readonly onShuttingDown?: () => void;
  /** The event feeds (session-events, client-events), stopped together before the streams close. */
  readonly eventSources?: readonly ClosableEventSource[];
  /** Transports (listeners), stopped in order after every push stream got its status. */
  readonly transports?: readonly ShutdownStep[];
  /** Whatever the adapters hold (downstream channels, store connections, telemetry), last, in order. */
  readonly resources?: readonly ShutdownStep[];
}

/**
 * The assembled core: one `SessionCache` shared by both services and the session-events
 * handler (so a revoke reaches every later check), one `PushHub` behind the subscription
 * service and both stream handlers. A transport calls `execute` and `openStream`; event
 * sources feed `sessionEvents` and `clientEvents`.
 */
export interface GatewayCore {
  readonly commands: CommandService;
  readonly subscriptions: SubscriptionService;
  readonly hub: PushHub;
  readonly sessionCache: SessionCache;
  /** What this process knows to be revoked (kept when the session cache is cleared, SPEC §5.5). */
  readonly revocations: RevocationMemory;
  /** Feed the session-events stream (SPEC §5.3) here. */
  readonly sessionEvents: SessionEventsHandler;
  /** Feed the client-events stream (SPEC §5.4) here. */
  readonly clientEvents: ClientEventsHandler;
  readonly router: CommandRouter;
  readonly signer: ResponseSigner;
  readonly metrics: GatewayMetrics;
  /** The rate limits in force; undefined without rules. */
  readonly rateLimits: RateLimits | undefined;
  /**
   * Bounds per-request failure lines (SPEC §8.5), shared by the command pipeline and the
   * transports (a transport asks it before writing a line of its own for a failed request).
   */
  readonly requestLog: RequestLogLimiter;
  /** True once `beginShutdown` was called. */
  readonly shuttingDown: boolean;
  /** ExecuteCommand: the whole pipeline; rejects with a `GatewayError` for a status. */
  execute(request: CommandRequest, context?: CallContext): Promise<CommandResult>;
  /**
   * SubscribeEvents: runs the checks, then streams into `sink` (bootstrap first). See
   * {@link OpenedStream} for what the core guarantees the transport.
   */
  openStream(request: SubscribeRequest, sink: PushSink): OpenedStream;
  /** New commands and subscriptions fail `UNAVAILABLE` `gateway is shutting down` from now on. */
  beginShutdown(): void;
  /**
   * The shutdown sequence around the core (SPEC §8.2): `readiness` (refuse new requests),
   * `stream subscribers`, `push hub` (every stream ends `UNAVAILABLE`), the transports, the
   * resources. Run it with `runShutdown`.
   */
  shutdownSteps(plan: ShutdownPlan): ShutdownStep[];
}

/** Assembles the core from its ports (see {@link GatewayCore} for the invariants it owns). */
export function createGatewayCore(ports: GatewayCorePorts, options: GatewayCoreOptions = {}): GatewayCore {
  const logger = ports.logger ?? noopLogger;
  const log = (component: string): Logger => logger.child({ component });
  const metrics = ports.metrics ?? new GatewayMetrics();
  const router = ports.router ?? new StaticRouter();
  const clock = ports.clock;
  const requestLog = new RequestLogLimiter({ logger: log('requests'), metrics });

  const revocations = new RevocationMemory({
    maxEntries: options.revocationsMaxEntries ?? DEFAULT_REVOCATIONS_MAX_ENTRIES,
    // A request signed before the revocation can be sent for one freshness window, and its
    // replay reservation lives for two: the revocation must outlive both.
    retentionMs: 2 * (options.freshnessWindowMs ?? DEFAULT_FRESHNESS_WINDOW_MS),
    metrics,
    logger: log('revocations'),
    clock,
  });
  metrics.observeRevocations(revocations);
  const sessionCache = new SessionCache(ports.sessions, {
    maxEntries: options.sessionCacheMaxEntries ?? DEFAULT_SESSION_CACHE_MAX_ENTRIES,
    ttlMs: options.sessionCacheTtlMs ?? DEFAULT_SESSION_CACHE_TTL_MS,
    revocations,
    logger: log('session-cache'),
    clock,
  });
  const reasserter =
    ports.revocations === undefined
      ? undefined
      : new RevocationReasserter({ memory: revocations, store: ports.revocations, metrics, logger: log('revocations'), clock });
  const hub = new PushHub({
    bufferSize: options.pushStreamBuffer ?? DEFAULT_PUSH_STREAM_BUFFER,
    bufferBytes: options.pushStreamBufferBytes,
    maxStreamsPerSession: options.pushMaxStreamsPerSession,
    metrics,
    logger: log('push-hub'),
    feed: ports.feed,
  });
  const rules = options.rateLimits ?? [];
  const rateLimits =
    rules.length === 0
      ? undefined
      : new RateLimits({
          rules,
          limiter: ports.rateLimiter ?? new InMemoryRateLimiter(clock === undefined ? {} : { clock }),
          metrics,
          logger: log('rate-limits'),
          ...(clock === undefined ? {} : { clock }),
        });
  const commands = new CommandService({
    sessions: sessionCache,
    replay: ports.replay,
    router,
    signer: ports.signer,
    metrics,
    logger: log('commands'),
    requestLog,
    clock,
    freshnessWindowMs: options.freshnessWindowMs,
    maxPayloadBytes: options.maxPayloadBytes,
    downstreamTimeoutMs: options.downstreamTimeoutMs,
    asyncCrypto: options.asyncCrypto !== false && options.commandAsyncCrypto === true,
    rateLimits,
  });
  const subscriptions = new SubscriptionService({
    sessions: sessionCache,
    replay: ports.replay,
    hub,
    signer: ports.signer,
    metrics,
    logger: log('subscriptions'),
    clock,
    history: ports.history,
    freshnessWindowMs: options.freshnessWindowMs,
    resumeMaxEvents: options.resumeMaxEvents,
    resumeMaxScan: options.resumeMaxScan,
    resumeMaxBytes: options.resumeMaxBytes,
    maxEventBytes: options.pushMaxEventBytes,
    asyncCrypto: options.asyncCrypto,
    rateLimits,
  });
  const sessionEvents = new SessionEventsHandler({
    cache: sessionCache,
    hub,
    ...(ports.revocations === undefined || reasserter === undefined ? {} : { revocations: { memory: revocations, store: ports.revocations, reasserter } }),
    clock,
    metrics,
    logger: log('session-events'),
  });
  const clientEvents = new ClientEventsHandler({
    hub,
    signer: ports.signer,
    metrics,
    logger: log('client-events'),
    maxEventBytes: options.pushMaxEventBytes,
    clock,
  });
  let shuttingDown = false;
  const beginShutdown = (): void => {
    shuttingDown = true;
    commands.beginShutdown();
    subscriptions.beginShutdown();
  };
  const streamLogger = log('push-streams');

  return {
    commands,
    subscriptions,
    hub,
    sessionCache,
    revocations,
    sessionEvents,
    clientEvents,
    router,
    signer: ports.signer,
    metrics,
    rateLimits,
    requestLog,
    get shuttingDown() {
      return shuttingDown;
    },
    execute: (request, context) => commands.execute(request, context),
    openStream: (request, sink) => openStream(subscriptions, request, sink, streamLogger),
    beginShutdown,
    shutdownSteps: (plan) => [
      {
        component: 'readiness',
        stop: () => {
          plan.onShuttingDown?.();
          beginShutdown();
        },
      },
      {
        component: 'stream subscribers',
        stop: () => Promise.all([...(plan.eventSources ?? []).map((source) => ('close' in source ? source.close() : source.stop())), reasserter?.close()]),
      },
      { component: 'push hub', stop: () => hub.close() },
      // After each transport: the suppressed-lines summaries pending so far (none is lost at exit).
      ...(plan.transports ?? []).map((step) => ({
        component: step.component,
        stop: async (budgetMs: number) => {
          try {
            return await step.stop(budgetMs);
          } finally {
            requestLog.flush();
          }
        },
      })),
      ...(plan.resources ?? []),
    ],
  };
}

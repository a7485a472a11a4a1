import { type DependencyContainer } from 'tsyringe';
import { type RawFields, type StreamEntryHandler } from '@edge-gateway/core';
import { InMemoryEventStream, InMemoryReplayStore, InMemorySessionStore } from '@edge-gateway/core/memory';
import type { EventSource, GatewayBackend } from '@edge-gateway/gateway/backend';
import { cached, coreOf } from '@edge-gateway/gateway/container';
import { Tokens } from '@edge-gateway/gateway/tokens';

/** Feeds one in-memory stream to a core handler between `start` and `close`. */
export class InMemoryStreamSource implements EventSource {
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly stream: InMemoryEventStream,
    private readonly handler: StreamEntryHandler,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe ??= this.stream.subscribe(this.handler);
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}

/**
 * The development backend: the core's in-memory session store, replay store and two
 * in-memory streams (session-events, client-events; the latter is also the event history).
 * Nothing survives the process. The dev routes write to it the way the auth service and
 * event publishers write to Redis.
 */
export class InMemoryBackend {
  readonly sessions = new InMemorySessionStore();
  readonly replay = new InMemoryReplayStore();
  readonly sessionEvents = new InMemoryEventStream();
  readonly clientEvents = new InMemoryEventStream();

  /** Reads a session record (what `HGETALL` would return), or `undefined`. */
  async getSession(deviceSessionId: string): Promise<RawFields | undefined> {
    return this.sessions.getRecord(deviceSessionId);
  }

  /**
   * Writes a session record, then appends the matching snapshot to session-events (the
   * auth service's order, SPEC §5.1). Returns the snapshot's entry id.
   */
  writeSession(fields: RawFields): string {
    const id = fields['device_session_id'] ?? '';
    this.sessions.set(id, fields);
    return this.sessionEvents.append(fields);
  }

  /** Appends one entry to client-events as a publisher would; returns its id. */
  publish(fields: RawFields): string {
    return this.clientEvents.append(fields);
  }

  /**
   * The `registerBackend` hook of `startGateway`: registers this backend's stores, history and
   * event sources (subscribing the core handlers to the in-memory streams).
   */
  register(): (container: DependencyContainer) => void {
    return (container) => {
      container.register(Tokens.SessionStore, { useValue: this.sessions });
      container.register(Tokens.ReplayStore, { useValue: this.replay });
      container.register(Tokens.EventHistory, { useValue: this.clientEvents });
      container.register(
        Tokens.SessionEventsSubscriber,
        cached((c) => new InMemoryStreamSource(this.sessionEvents, coreOf(c).sessionEvents)),
      );
      container.register(
        Tokens.ClientEventsSubscriber,
        cached((c) => new InMemoryStreamSource(this.clientEvents, coreOf(c).clientEvents)),
      );
      const backend: GatewayBackend = { kind: 'memory', connect: async () => undefined, close: async () => undefined };
      container.register(Tokens.Backend, { useValue: backend });
    };
  }
}

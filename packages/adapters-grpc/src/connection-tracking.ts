import { constants as http2, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import {
  ServerInterceptingCall,
  status as GrpcStatus,
  type Metadata,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
} from '@grpc/grpc-js';
import { MAX_CALLS_PER_CONNECTION, type ConnectionBudget, type ConnectionBudgets, type Logger } from '@edge-gateway/core';
import type { GatewayStatus } from './status-mapping.js';

const TRACKED = Symbol('edge-gateway.grpc.trackedCall');

type PartialStatus = Parameters<ServerInterceptingCallInterface['sendStatus']>[0];

/** What a handler learns about its call from the connection tracking. */
export interface TrackedCallInfo {
  /** Set when the connection's budget ended the call (`RESOURCE_EXHAUSTED`, SPEC §2.2): the status the client got. */
  readonly endedByConnection: GatewayStatus | undefined;
}

/** The tracking of the call whose request metadata this is (undefined on a server without it). */
export function trackedCallOf(metadata: Metadata): TrackedCallInfo | undefined {
  return (metadata as unknown as { [TRACKED]?: TrackedCallInfo })[TRACKED];
}

export interface ConnectionTrackingOptions {
  readonly budgets: ConnectionBudgets;
  /** How long a connection closed for its cost may take to deliver its statuses before it is destroyed. */
  readonly closeGraceMs: number;
  readonly logger: Logger;
}

/**
 * The gRPC side of the per-connection bounds (SPEC §2.2, §8.3), as a grpc-js server interceptor:
 * every call reports its answer bytes (until its HTTP/2 stream took them: grpc-js calls a
 * message's write callback once flow control and the socket let it out) and its final status to
 * the budget of its HTTP/2 session. The budget's orders map onto HTTP/2: stop reading new requests
 * = advertise `SETTINGS_MAX_CONCURRENT_STREAMS` 0 (clients queue new calls; a stream opened
 * anyway is refused by nghttp2 before its request is read), read again = the usual limit, close
 * = the calls still running end `RESOURCE_EXHAUSTED`, then GOAWAY and the connection is closed.
 *
 * grpc-js does not expose a call's HTTP/2 session: it is read from its innermost call object
 * (`BaseServerInterceptingCall.stream`, grpc-js 1.10+; the version is pinned and the system
 * tests fail if it moves). Without it calls go unbounded and one error line says so.
 */
export function connectionTracking(options: ConnectionTrackingOptions): ServerInterceptor {
  const connections = new WeakMap<Http2Session, GrpcConnection>();
  let warned = false;
  return (method, call) => {
    const session = (call as { stream?: ServerHttp2Stream }).stream?.session;
    if (session === undefined) {
      if (!warned) options.logger.error('grpc connection bounds unavailable: grpc-js internals changed (no HTTP/2 session on the call)', {});
      warned = true;
      return new ServerInterceptingCall(call);
    }
    let connection = connections.get(session);
    if (connection === undefined) {
      connection = new GrpcConnection(session, options);
      connections.set(session, connection);
    }
    return new TrackedCall(call, method, connection);
  };
}

/** One HTTP/2 session and its budget. */
class GrpcConnection {
  readonly calls = new Set<TrackedCall>();
  readonly budget: ConnectionBudget;

  constructor(
    private readonly session: Http2Session,
    private readonly options: ConnectionTrackingOptions,
  ) {
    this.budget = options.budgets.open({
      pauseReading: () => this.maxConcurrentStreams(0),
      resumeReading: () => this.maxConcurrentStreams(MAX_CALLS_PER_CONNECTION),
      close: (_reason, message) => this.close(message),
    });
    session.once('close', () => this.budget.closed());
  }

  private maxConcurrentStreams(value: number): void {
    try {
      this.session.settings({ maxConcurrentStreams: value });
    } catch {
      // Too many SETTINGS unacknowledged: a client that reads nothing. The drain timeout closes it.
    }
  }

  private close(message: string): void {
    const status: GatewayStatus = { code: GrpcStatus.RESOURCE_EXHAUSTED, details: message };
    for (const call of [...this.calls]) call.endByConnection(status);
    const session = this.session;
    if (session.closed || session.destroyed) return;
    try {
      // No new stream after the last one processed; the statuses above go out before it.
      session.goaway(http2.NGHTTP2_ENHANCE_YOUR_CALM, session.state.lastProcStreamID ?? 0, Buffer.from(message));
    } catch {
      // The session is going away already.
    }
    session.close();
    // A client that reads nothing takes neither the statuses nor the GOAWAY.
    setTimeout(() => session.destroy(), this.options.closeGraceMs).unref();
  }
}

/** One call: its answer bytes and final status go to its connection's budget. */
class TrackedCall extends ServerInterceptingCall implements TrackedCallInfo {
  endedByConnection: GatewayStatus | undefined;
  private statusSent = false;
  private pendingBytes = 0;
  private done = false;

  constructor(
    next: ServerInterceptingCallInterface,
    private readonly method: ServerMethodDefinition<unknown, unknown>,
    private readonly connection: GrpcConnection,
  ) {
    const self: { call?: TrackedCall } = {};
    super(next, {
      start: (startNext) =>
        startNext({
          onReceiveMetadata: (metadata, nextMetadata) => {
            // The handler finds its tracking on the request metadata it is given.
            (metadata as unknown as { [TRACKED]?: TrackedCallInfo })[TRACKED] = self.call;
            nextMetadata(metadata);
          },
          // grpc-js reports a cancel for every call once its status was sent or its stream closed.
          onCancel: () => self.call?.finished(),
        }),
    });
    self.call = this;
    connection.calls.add(this);
  }

  override sendMessage(message: unknown, callback: () => void): void {
    // The service's serializers cache their last encoding (event-encoding.ts): grpc-js's own
    // serialization right after gets the same bytes without encoding twice. +5: the gRPC prefix.
    const size = this.method.responseSerialize(message).length + 5;
    this.pendingBytes += size;
    this.connection.budget.queued(size);
    super.sendMessage(message, () => {
      this.release(size);
      callback();
    });
  }

  override sendStatus(status: PartialStatus): void {
    if (this.statusSent) return;
    this.statusSent = true;
    super.sendStatus(status);
    // After the status: a refusal past the budget closes the connection behind this answer.
    if (this.endedByConnection === undefined) this.connection.budget.answered(status.code);
  }

  /** The connection is being closed: this call, still running, ends with `status`. */
  endByConnection(status: GatewayStatus): void {
    if (this.statusSent) return;
    this.endedByConnection = status;
    this.sendStatus(status);
  }

  private release(bytes: number): void {
    const taken = Math.min(bytes, this.pendingBytes);
    this.pendingBytes -= taken;
    this.connection.budget.written(taken);
  }

  private finished(): void {
    if (this.done) return;
    this.done = true;
    // Bytes whose write never completed went with the stream.
    this.release(this.pendingBytes);
    this.connection.calls.delete(this);
  }
}

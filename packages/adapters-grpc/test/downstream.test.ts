import { Metadata, Server, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { context, propagation, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '@edge-gateway/core';
import { CommandHandlerService, type DownstreamCommand, type DownstreamResult } from '../src/generated/index.js';
import { GrpcCommandDownstream, createDownstreamRouter, parseDownstreamRoutes } from '../src/index.js';
import { GatewayFixture, execute, signedCommand, statusOf } from './fixtures.js';

type Handler = (call: ServerUnaryCall<DownstreamCommand, DownstreamResult>, callback: sendUnaryData<DownstreamResult>) => void;

/** A real CommandHandler server on port 0 whose behaviour each test sets. */
class FakeBusinessService {
  readonly server = new Server();
  readonly calls: Array<{ command: DownstreamCommand; metadata: Metadata; deadlineMs: number }> = [];
  handler: Handler = (call, callback) => callback(null, { resultCode: 'ok', payload: Buffer.from(`handled:${call.request.messageType}`) });
  port = 0;

  async start(): Promise<this> {
    this.server.addService(CommandHandlerService, {
      execute: (call: ServerUnaryCall<DownstreamCommand, DownstreamResult>, callback: sendUnaryData<DownstreamResult>) => {
        const deadline = call.getDeadline();
        this.calls.push({ command: call.request, metadata: call.metadata, deadlineMs: deadline instanceof Date ? deadline.getTime() : deadline });
        this.handler(call, callback);
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    return this;
  }
  get target(): string {
    return `127.0.0.1:${this.port}`;
  }
  stop(): void {
    this.server.forceShutdown();
  }
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';

describe('downstream CommandHandler calls', () => {
  const contextManager = new AsyncLocalStorageContextManager();
  let service: FakeBusinessService;
  let routes: ReturnType<typeof createDownstreamRouter>;
  let f: GatewayFixture;

  beforeAll(async () => {
    // With no SDK the API propagates nothing; install the W3C propagator like an app would.
    context.setGlobalContextManager(contextManager.enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    service = await new FakeBusinessService().start();
    routes = createDownstreamRouter(parseDownstreamRoutes(`demo.=${service.target}`));
    f = await GatewayFixture.start({ router: routes.router });
  });
  afterAll(async () => {
    await f.close();
    routes.close();
    service.stop();
    propagation.disable();
    context.disable();
  });
  afterEach(() => {
    service.calls.length = 0;
    service.handler = (call, callback) => callback(null, { resultCode: 'ok', payload: Buffer.from(`handled:${call.request.messageType}`) });
  });

  it('forwards the authenticated command and relays the result', async () => {
    const device = f.addDevice();
    const request = signedCommand(device, { messageType: 'demo.echo', payload: Buffer.from([1, 2, 3]) });
    const response = await execute(f.client, request);
    expect(response).toMatchObject({ requestId: request.requestId, resultCode: 'ok' });
    expect(Buffer.from(response.payload).toString()).toBe('handled:demo.echo');
    expect(service.calls).toHaveLength(1);
    expect(service.calls[0]!.command).toEqual({
      messageType: 'demo.echo',
      userId: device.userId,
      deviceSessionId: device.deviceSessionId,
      requestId: request.requestId,
      payload: Buffer.from([1, 2, 3]),
    });
  });

  it("propagates the client's deadline to the downstream call", async () => {
    const deadline = Date.now() + 4000;
    await execute(f.client, signedCommand(f.addDevice()), { deadline });
    const seen = service.calls[0]!.deadlineMs;
    expect(Math.abs(seen - deadline)).toBeLessThan(250);
  });

  it('uses the downstream timeout when the client set no deadline', async () => {
    const before = Date.now();
    await execute(f.client, signedCommand(f.addDevice()));
    const seen = service.calls[0]!.deadlineMs;
    expect(seen - before).toBeGreaterThan(9000);
    expect(seen - before).toBeLessThan(10_500);
  });

  it('continues the caller\'s W3C trace: traceparent reaches the downstream with the same trace id', async () => {
    const metadata = new Metadata();
    metadata.set('traceparent', `00-${TRACE_ID}-${SPAN_ID}-01`);
    await execute(f.client, signedCommand(f.addDevice()), {}, metadata);
    const [traceparent] = service.calls[0]!.metadata.get('traceparent');
    expect(String(traceparent)).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
  });

  it('GrpcCommandDownstream injects the active span context', async () => {
    const downstream = new GrpcCommandDownstream(service.target);
    try {
      const ctx = trace.setSpanContext(context.active(), { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED });
      const command = { messageType: 'demo.x', userId: 'u', deviceSessionId: 'ds', requestId: 'r', payload: Buffer.alloc(0) };
      await context.with(ctx, () => downstream.execute(command, { deadlineMs: Date.now() + 2000 }));
      expect(service.calls[0]!.metadata.get('traceparent')).toEqual([`00-${TRACE_ID}-${SPAN_ID}-01`]);
    } finally {
      downstream.close();
    }
  });

  it('passes UNAVAILABLE through with its message', async () => {
    service.handler = (_call, callback) => callback({ code: status.UNAVAILABLE, details: 'billing is down for maintenance' });
    expect(await statusOf(execute(f.client, signedCommand(f.addDevice())))).toEqual({ code: status.UNAVAILABLE, details: 'billing is down for maintenance' });
  });

  it('passes DEADLINE_EXCEEDED through with its message', async () => {
    service.handler = (_call, callback) => callback({ code: status.DEADLINE_EXCEEDED, details: 'ledger timed out' });
    expect(await statusOf(execute(f.client, signedCommand(f.addDevice())))).toEqual({ code: status.DEADLINE_EXCEEDED, details: 'ledger timed out' });
  });

  it('turns any other downstream status into INTERNAL downstream command failed', async () => {
    for (const code of [status.PERMISSION_DENIED, status.INVALID_ARGUMENT, status.INTERNAL, status.UNKNOWN]) {
      service.handler = (_call, callback) => callback({ code, details: 'secret backend detail' });
      expect(await statusOf(execute(f.client, signedCommand(f.addDevice())))).toEqual({ code: status.INTERNAL, details: 'downstream command failed' });
    }
  });

  it('cancels the downstream call when the client gives up', async () => {
    let cancelled!: () => void;
    const sawCancel = new Promise<void>((resolve) => (cancelled = resolve));
    service.handler = (call) => call.on('cancelled', () => cancelled());
    const result = await statusOf(execute(f.client, signedCommand(f.addDevice()), { deadline: Date.now() + 300 }));
    expect(result.code).toBe(status.DEADLINE_EXCEEDED);
    await sawCancel;
  });

  it('cancels the downstream call when the client cancels (no deadline involved)', async () => {
    let arrived!: () => void;
    const atDownstream = new Promise<void>((resolve) => (arrived = resolve));
    let cancelled!: () => void;
    const sawCancel = new Promise<void>((resolve) => (cancelled = resolve));
    // Holds the command (never answers) until the gateway cancels it.
    service.handler = (call) => {
      call.on('cancelled', () => cancelled());
      arrived();
    };
    const outcome = new Promise<{ code: number }>((resolve) => {
      const call = f.client.executeCommand(signedCommand(f.addDevice()), new Metadata(), {}, (error) => resolve({ code: error?.code ?? status.OK }));
      void atDownstream.then(() => call.cancel());
    });
    expect((await outcome).code).toBe(status.CANCELLED);
    await sawCancel;
  });

  it('an unreachable downstream is UNAVAILABLE', async () => {
    const dead = new FakeBusinessService();
    await dead.start();
    const target = dead.target;
    dead.stop();
    const downstream = new GrpcCommandDownstream(target);
    try {
      const command = { messageType: 'demo.x', userId: 'u', deviceSessionId: 'ds', requestId: 'r', payload: Buffer.alloc(0) };
      const error = await downstream.execute(command, { deadlineMs: Date.now() + 2000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GatewayError);
      expect((error as GatewayError).code).toBe('unavailable');
    } finally {
      downstream.close();
    }
  });

  it('routes by longest prefix to one channel per distinct target', async () => {
    const other = await new FakeBusinessService().start();
    other.handler = (_call, callback) => callback(null, { resultCode: 'other', payload: Buffer.alloc(0) });
    const built = createDownstreamRouter(parseDownstreamRoutes(`demo.=${service.target}, demo.special.=${other.target}, misc.=${service.target}`));
    try {
      expect(built.router.route('demo.special.x')?.target).toBe(other.target);
      expect(built.router.route('demo.x')?.target).toBe(service.target);
      expect(built.router.route('misc.x')).toBe(built.router.route('demo.x'));
      expect(built.router.route('unknown.x')).toBeUndefined();
      const command = { messageType: 'demo.special.x', userId: 'u', deviceSessionId: 'ds', requestId: 'r', payload: Buffer.alloc(0) };
      await expect(built.router.route('demo.special.x')!.execute(command, { deadlineMs: Date.now() + 2000 })).resolves.toMatchObject({ resultCode: 'other' });
    } finally {
      built.close();
      other.stop();
    }
  });
});

describe('downstream calls without a global context manager (the binary when traces are not exported)', () => {
  let service: FakeBusinessService;
  let routes: ReturnType<typeof createDownstreamRouter>;
  let f: GatewayFixture;
  const signals: AbortSignal[] = [];

  beforeAll(async () => {
    context.disable();
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    service = await new FakeBusinessService().start();
    routes = createDownstreamRouter(parseDownstreamRoutes(`demo.=${service.target}`));
    const grpcRoute = routes.router.route('demo.x')!;
    // Records the signal each call hands to the downstream, then forwards as usual.
    const recording = {
      target: grpcRoute.target,
      execute: (command: Parameters<typeof grpcRoute.execute>[0], callContext: Parameters<typeof grpcRoute.execute>[1]) => {
        if (callContext.signal) signals.push(callContext.signal);
        return grpcRoute.execute(command, callContext);
      },
    };
    f = await GatewayFixture.start({ router: { route: (type) => (type.startsWith('demo.') ? recording : undefined) } });
  });
  afterAll(async () => {
    await f.close();
    routes.close();
    service.stop();
    propagation.disable();
  });

  it("still continues the caller's trace: the context is handed to the downstream explicitly", async () => {
    const metadata = new Metadata();
    metadata.set('traceparent', `00-${TRACE_ID}-${SPAN_ID}-01`);
    await execute(f.client, signedCommand(f.addDevice()), {}, metadata);
    const [traceparent] = service.calls.at(-1)!.metadata.get('traceparent');
    expect(String(traceparent)).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
  });

  it('does not abort the call signal of a command that completed (grpc-js reports every closed call as cancelled)', async () => {
    signals.length = 0;
    await execute(f.client, signedCommand(f.addDevice()));
    // A second full round trip: by its end the first call's stream has closed on the server.
    await execute(f.client, signedCommand(f.addDevice()));
    expect(signals).toHaveLength(2);
    expect(signals[0]!.aborted).toBe(false);
  });
});

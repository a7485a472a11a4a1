import { randomUUID, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { credentials, Metadata, status, type ClientReadableStream } from '@grpc/grpc-js';
import { EdgeGatewayClient, type GatewayEvent } from '@edge-gateway/adapters-grpc/generated';
import { type GatewayClient, subscribeRequestBytes } from '@edge-gateway/client';
import { waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { gatewayEnv } from '@edge-gateway/test-utils/gateway-process';

// The metrics reader is shared with the dev app's tests (test-utils); re-exported for the drills.
export { metricValue, scrape } from '@edge-gateway/test-utils/gateway-process';
import { EventCollector, clientFor, connectRedis, type Device, type RawRedis } from '@edge-gateway/test-utils/system-support';

/** Env of a drill gateway: loopback listeners on port 0, admin listener on, short budgets. */
export function drillEnv(
  redis: RedisServerHandle,
  signerPath: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return gatewayEnv(redis, signerPath, {
    GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
    GATEWAY_LOG_LEVEL: 'info',
    ...extra,
  });
}

/** A `GatewayClient` on its own HTTP/2 connection (own subchannel pool). */
export function isolatedClient(device: Device, grpcAddress: string, gatewayPublicKey: Uint8Array): GatewayClient {
  return clientFor(device, grpcAddress, gatewayPublicKey, { 'grpc.use_local_subchannel_pool': 1 });
}

/** An {@link EventCollector} on a fresh subscription of `client`, which it can cancel. */
export class StreamWatcher extends EventCollector {
  private readonly abort: AbortController;

  constructor(client: GatewayClient, options: { resumeAfterEventId?: string } = {}) {
    const abort = new AbortController();
    super(client.subscribe({ signal: abort.signal, ...options }));
    this.abort = abort;
  }

  cancel(): void {
    this.abort.abort();
  }
}

/** Resident set size of a process in MiB, from `/proc/<pid>/status` (`VmRSS`). */
export function rssMiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) / 1024;
}

/** A fresh publisher connection, retried until Redis answers (after a restart). */
export async function reconnectRaw(redis: RedisServerHandle, timeoutMs = 10_000): Promise<RawRedis> {
  return waitFor(() => connectRedis(redis), { timeoutMs, intervalMs: 50, message: 'publisher to reconnect to redis' });
}

/** A subscribe call through the raw generated client that the test reads (or stalls) by hand. */
export interface RawStream {
  readonly call: ClientReadableStream<GatewayEvent>;
  /** The first (bootstrap) event. */
  readonly first: Promise<GatewayEvent>;
  /** The first non-OK status the call ends with. */
  readonly status: Promise<{ code: number; details: string }>;
}

export function rawSubscribe(client: EdgeGatewayClient, device: Device): RawStream {
  const request = { deviceSessionId: device.deviceSessionId, requestId: randomUUID(), timestampMs: Date.now(), resumeAfterEventId: '' };
  const call = client.subscribeEvents({ ...request, signature: sign(null, subscribeRequestBytes(request), device.privateKey) }, new Metadata());
  const statusSeen = new Promise<{ code: number; details: string }>((resolve) => {
    call.on('error', (e: { code: number; details: string }) => resolve({ code: e.code, details: e.details }));
    call.on('status', (s: { code: number; details: string }) => {
      if (s.code !== status.OK) resolve({ code: s.code, details: s.details });
    });
  });
  const first = new Promise<GatewayEvent>((resolve) => call.once('data', resolve));
  return { call, first, status: statusSeen };
}

/** A raw EdgeGateway client on its own HTTP/2 connection. */
export function rawClient(grpcAddress: string): EdgeGatewayClient {
  return new EdgeGatewayClient(grpcAddress, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

/** Runs `fn` and returns what it settled with plus how long it took. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: unknown; ms: number }> {
  const started = performance.now();
  try {
    const value = await fn();
    return { value, ms: performance.now() - started };
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
}

/** mulberry32: a small seeded PRNG, so fuzz runs are reproducible from the printed seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

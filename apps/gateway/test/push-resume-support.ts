import { WebSocket } from 'ws';
import type { BackoffOptions, GatewayClient } from '@edge-gateway/client';
import { WebGatewayClient, importDevicePrivateKey, type WebSocketConstructor } from '@edge-gateway/client-web';
import { WEBSOCKET_PATH } from '@edge-gateway/protocol';
import type { Device, RawRedis } from '@edge-gateway/test-utils/system-support';
import { clientFor, publishEvent } from '@edge-gateway/test-utils/system-support';

/** A client for `device` whose channel retries connecting quickly (gateway restarts in tests). */
export function fastReconnectClient(device: Device, grpcAddress: string, gatewayPublicKey: Uint8Array): GatewayClient {
  return clientFor(device, grpcAddress, gatewayPublicKey, {
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.min_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 500,
    // Its own subchannel, so another client's channel state can't interfere.
    'grpc.use_local_subchannel_pool': 1,
  });
}

/** The browser SDK under Node (the `ws` package's WebSocket), on the gateway's WebSocket listener. */
export async function webClientFor(device: Device, websocketAddress: string, gatewayPublicKey: Uint8Array): Promise<WebGatewayClient> {
  return WebGatewayClient.connect({
    url: `ws://${websocketAddress}${WEBSOCKET_PATH}`,
    deviceSessionId: device.deviceSessionId,
    userId: device.userId,
    privateKey: await importDevicePrivateKey(device.privateKey.export({ format: 'der', type: 'pkcs8' })),
    gatewayPublicKeys: [gatewayPublicKey],
    WebSocket: WebSocket as unknown as WebSocketConstructor,
  });
}

export const TEST_BACKOFF: BackoffOptions = { initialMs: 50, maxMs: 400, multiplier: 2 };

/** Raw `XRANGE` entry as node-redis returns it. */
interface RawEntry {
  readonly id: string;
  readonly message: Record<string, string>;
}

/**
 * Ids of the entries of `stream` strictly after `afterId` that a stream of `device` receives
 * (SPEC §5.4 targeting: its user, and no session or its own session), read back with XRANGE.
 */
export async function targetedIdsAfter(raw: RawRedis, stream: string, afterId: string, device: Device): Promise<string[]> {
  const entries = (await raw.xRange(stream, `(${afterId}`, '+')) as RawEntry[];
  return entries
    .filter((e) => e.message['user_id'] === device.userId)
    .filter((e) => (e.message['device_session_id'] ?? '') === '' || e.message['device_session_id'] === device.deviceSessionId)
    .map((e) => e.id);
}

/** A publisher XADDing a rotating mix of events at a steady pace until `stop()`. */
export class ContinuousPublisher {
  private stopped = false;
  private readonly loop: Promise<void>;
  published = 0;

  constructor(raw: RawRedis, stream: string, mix: ReadonlyArray<{ userId: string; deviceSessionId?: string }>, intervalMs: number) {
    this.loop = (async () => {
      let i = 0;
      while (!this.stopped) {
        const target = mix[i % mix.length] as { userId: string; deviceSessionId?: string };
        await publishEvent(raw, { ...target, eventType: 'feed.tick', payload: Buffer.from(`tick-${i}`) }, stream);
        i += 1;
        this.published = i;
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/**
 * Sum of the samples of `name` on a Prometheus text page whose labels include `labels`
 * (0 when there is none).
 */
export function metricValue(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (match === null || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) found[pair[1] as string] = pair[2] as string;
    if (!Object.entries(labels).every(([k, v]) => found[k] === v)) continue;
    total += Number(match[4]);
  }
  return total;
}

export async function scrape(adminAddress: string): Promise<string> {
  const res = await fetch(`http://${adminAddress}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

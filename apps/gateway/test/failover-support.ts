import { createClient } from 'redis';
import { GatewayStatusError, type GatewayClient } from '@edge-gateway/client';
import type { SentinelTopology } from '@edge-gateway/test-utils';

/** One finished command of a {@link CommandLoad}. */
export interface CommandOutcome {
  readonly startedAt: number;
  readonly endedAt: number;
  /** `OK`, or the gRPC status name of the failure (e.g. `UNAVAILABLE`). */
  readonly code: string;
  readonly details: string;
}

/**
 * A steady command load: `workers` loops each running one `echo.ping` after the other until
 * {@link CommandLoad.stop} (or `maxCommands` in total, so it always ends).
 */
export class CommandLoad {
  readonly outcomes: CommandOutcome[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(client: GatewayClient, workers = 2, maxCommands = 20_000) {
    this.loops = Array.from({ length: workers }, async () => {
      while (this.running && this.outcomes.length < maxCommands) {
        const startedAt = Date.now();
        try {
          await client.execute('echo.ping', Buffer.from('load'), { timeoutMs: 5000 });
          this.outcomes.push({ startedAt, endedAt: Date.now(), code: 'OK', details: '' });
        } catch (error) {
          const e = error instanceof GatewayStatusError ? error : undefined;
          this.outcomes.push({ startedAt, endedAt: Date.now(), code: e?.codeName ?? 'ERROR', details: e?.details ?? String(error) });
          // A failing Redis answers at once: pace the retries so the log stays readable.
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    });
  }

  /** The first success that started after `at` (ms epoch), if any. */
  firstSuccessAfter(at: number): CommandOutcome | undefined {
    return this.outcomes.find((o) => o.code === 'OK' && o.startedAt >= at);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** A plain node-redis connection to the current master of `topo` (the publishers' side). */
export async function connectMaster(topo: SentinelTopology) {
  const { host, port } = await topo.master();
  const client = createClient({ socket: { host, port, reconnectStrategy: false }, password: topo.password });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** The environment of a gateway on `topo` through its Sentinels (no master address). */
export function sentinelEnv(topo: SentinelTopology): Record<string, string | undefined> {
  return {
    GATEWAY_REDIS_MASTER_ADDR: undefined,
    GATEWAY_REDIS_SENTINEL_ADDRS: topo.sentinelAddrs,
    GATEWAY_REDIS_SENTINEL_MASTER_NAME: topo.masterName,
    GATEWAY_REDIS_SENTINEL_PASSWORD: topo.sentinelPassword,
    GATEWAY_REDIS_PASSWORD: topo.password,
  };
}

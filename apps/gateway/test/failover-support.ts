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

/**
 * Every `+switch-master` a Sentinel of `topo` announces, with the time it arrived here (all
 * Sentinels are subscribed; the first to announce a master counts). For the 2 s rule of SPEC §5.6.
 */
export async function watchSwitchMaster(topo: SentinelTopology): Promise<{
  /**
   * Resolves with the first announcement of a master on `port` at or after `since` (ms epoch;
   * default 0: any). A topology that fails over more than once promotes the same port again.
   */
  announced(port: number, timeoutMs?: number, since?: number): Promise<number>;
  close(): Promise<void>;
}> {
  const seen = new Map<number, number[]>();
  const waiters = new Set<() => void>();
  const subscribers = await Promise.all(
    topo.sentinels.map(async (sentinel) => {
      const subscriber = createClient({ socket: { host: sentinel.host, port: sentinel.port, reconnectStrategy: false }, password: topo.sentinelPassword });
      subscriber.on('error', () => undefined);
      await subscriber.connect();
      await subscriber.subscribe('+switch-master', (message: string) => {
        // `<name> <old ip> <old port> <new ip> <new port>`
        const port = Number(message.split(' ')[4]);
        seen.set(port, [...(seen.get(port) ?? []), Date.now()]);
        for (const wake of [...waiters]) wake();
      });
      return subscriber;
    }),
  );
  return {
    async announced(port, timeoutMs = 30_000, since = 0) {
      const deadline = Date.now() + timeoutMs;
      const first = () => seen.get(port)?.find((at) => at >= since);
      while (first() === undefined) {
        if (Date.now() > deadline) throw new Error(`no +switch-master to port ${port} within ${timeoutMs}ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(wake, Math.max(1, deadline - Date.now()));
          function wake(): void {
            clearTimeout(timer);
            waiters.delete(wake);
            resolve();
          }
          waiters.add(wake);
        });
      }
      return first() as number;
    },
    async close() {
      await Promise.all(subscribers.map((s) => s.quit().catch(() => undefined)));
    },
  };
}

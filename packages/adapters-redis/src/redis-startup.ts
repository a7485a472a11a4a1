import { describeRedisError, isUnreachableError, type RedisCommandOptions } from './redis-client.js';

/** What {@link connectAndPing} needs: a single-server or a cluster client. */
export interface PingableRedis {
  readonly address: string;
  readonly raw: { on(event: 'error', listener: (err: unknown) => void): unknown; off(event: 'error', listener: (err: unknown) => void): unknown };
  connect(): Promise<void>;
  ping(options?: RedisCommandOptions): Promise<void>;
  destroy(): void;
  /**
   * `true` for a client that asks several seeds in turn (a cluster): an error from one seed is
   * not the end of the connect, which fails by rejecting once every seed failed. Such errors are
   * kept to explain that failure (or a timeout) instead of failing at the first one.
   */
  readonly triesSeveralSeeds?: boolean;
}

/** Why the startup PING failed. */
export type RedisStartupErrorKind = 'auth' | 'unreachable' | 'timeout';

/** The startup `PING` (SPEC §8.1 step 3) failed. The message never contains the password. */
export class RedisStartupError extends Error {
  override readonly name = 'RedisStartupError';
  /** Always `redis_startup_failed`; {@link RedisStartupError.kind} says why. */
  readonly code = 'redis_startup_failed';

  constructor(
    readonly kind: RedisStartupErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const AUTH_REPLY = /^(WRONGPASS|NOAUTH|NOPERM)|invalid password|invalid username-password|AUTH <password> called without any password/i;

function classify(err: unknown, address: string, timeoutMs: number): RedisStartupError {
  if (err instanceof RedisStartupError) return err;
  const cause = err instanceof Error && err.cause !== undefined && err.name === 'RedisCommandError' ? err.cause : err;
  const text = cause instanceof Error ? cause.message : String(cause);
  if (AUTH_REPLY.test(text)) {
    return new RedisStartupError('auth', `redis PING failed: authentication failed (wrong password?) for ${address}`, { cause });
  }
  if (isUnreachableError(cause)) {
    const code = (cause as NodeJS.ErrnoException).code;
    return new RedisStartupError('unreachable', `redis PING failed: ${address} unreachable (${code})`, { cause });
  }
  if (cause instanceof Error && /timed? ?out/i.test(cause.constructor.name + cause.message)) {
    return new RedisStartupError('timeout', `redis PING failed: ${address} timed out after ${timeoutMs}ms`, { cause });
  }
  return new RedisStartupError('unreachable', `redis PING failed: ${address} unreachable (${describeRedisError(cause)})`, { cause });
}

/**
 * Connects the shared client and runs one `PING`, all bounded by `timeoutMs`
 * (`GATEWAY_REDIS_PING_TIMEOUT`). On failure the client is destroyed (no reconnect loop is
 * left running) and the promise rejects with a {@link RedisStartupError} whose `kind` tells
 * a wrong password (`auth`) from a refused connection (`unreachable`) and a server that
 * does not answer (`timeout`).
 */
export async function connectAndPing(client: PingableRedis, timeoutMs: number): Promise<void> {
  const address = client.address;
  let timer: NodeJS.Timeout | undefined;
  let onError: ((err: unknown) => void) | undefined;
  // The last error a seed gave, for a client that goes on to the next seed (see triesSeveralSeeds).
  let seedError: unknown;
  const explain = (err: unknown): RedisStartupError => classify(seedError ?? err, address, timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => {
        reject(
          seedError !== undefined
            ? explain(undefined)
            : new RedisStartupError('timeout', `redis PING failed: ${address} timed out after ${timeoutMs}ms`),
        );
      }, timeoutMs);
      // node-redis retries a failed connect forever; its first error tells us why.
      onError = client.triesSeveralSeeds === true ? (err: unknown) => void (seedError = err) : (err: unknown) => reject(classify(err, address, timeoutMs));
      client.raw.on('error', onError);
      const started = Date.now();
      client.connect().then(
        () =>
          client
            .ping({ timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)) })
            .then(resolve, (err: unknown) => reject(classify(err, address, timeoutMs))),
        // Every seed failed: the last seed's own error says more than node-redis's summary.
        (err: unknown) => reject(explain(err)),
      );
    });
  } catch (err) {
    client.destroy();
    throw classify(err, address, timeoutMs);
  } finally {
    clearTimeout(timer);
    if (onError !== undefined) client.raw.off('error', onError);
  }
}

/**
 * Replicated replay reservations (issue 21, SPEC §5.2) on a real master and a real replica
 * (`--replicaof`) on loopback: a reservation counts once `WAIT` reports it on the replica; with
 * the replica stopped or cut off it is `not_replicated` and deleted; many reservations share
 * their `WAIT`s, on connections of their own, so the shared client never waits behind one.
 */
import { replayStoreContract } from '@edge-gateway/core/testing';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCommandError, RedisReplayStore, RedisSessionStore, connectAndPing, type RedisClient } from '../src/index.js';
import { MetricsHarness, clientFor, recordingLogger, timed, unique } from './helpers.js';

let master: RedisServerHandle;
let replica: RedisServerHandle;
let client: RedisClient;
let admin: RedisClient;
const metrics = new MetricsHarness();
const logger = recordingLogger();
const keyPrefix = 'test:';

async function startReplica(of: RedisServerHandle): Promise<RedisServerHandle> {
  return startRedisServer({ password: of.password, extraArgs: ['--masterauth', of.password, '--replicaof', of.host, String(of.port)] });
}

/** Until the master counts a linked replica that acknowledges writes. */
async function replicated(server: RedisServerHandle = master): Promise<void> {
  const probe = clientFor(server, { commandTimeoutMs: 2000 });
  await connectAndPing(probe, 5000);
  try {
    // WAIT counts acknowledgements of this connection's own last write: without one it would
    // count a frozen replica too.
    await waitFor(
      async () => {
        await probe.command(['SET', unique('probe'), '1', 'PX', '10000']);
        return Number(await probe.command(['WAIT', '1', '100'])) >= 1;
      },
      { timeoutMs: 15_000, message: 'the replica acknowledges writes' },
    );
  } finally {
    probe.destroy();
  }
}

const waitCalls = async (server: RedisServerHandle = master): Promise<number> => {
  const stats = String(await (await adminOf(server)).command(['INFO', 'commandstats']));
  return Number(/cmdstat_wait:calls=(\d+)/.exec(stats)?.[1] ?? 0);
};

const admins = new Map<number, RedisClient>();
async function adminOf(server: RedisServerHandle): Promise<RedisClient> {
  let found = admins.get(server.port);
  if (found === undefined) {
    found = clientFor(server, { commandTimeoutMs: 2000 });
    admins.set(server.port, found);
    await connectAndPing(found, 5000);
  }
  return found;
}

const exists = async (key: string): Promise<number> => Number(await admin.command(['EXISTS', key]));

/** The master's client list lines of connections named `name`. */
const connectionsNamed = async (name: string): Promise<string[]> =>
  String(await admin.command(['CLIENT', 'LIST'])).split('\n').filter((l) => l.includes(` name=${name} `));

const ownClients: RedisClient[] = [];
/** A shared client of its own, with a unique `CLIENT SETNAME` so the test can find its connections. */
async function ownClient(server: RedisServerHandle = master): Promise<{ client: RedisClient; name: string }> {
  const name = unique('gw').replace(/:/g, '-');
  const own = clientFor(server, { commandTimeoutMs: 1000, metrics: metrics.metrics, logger, clientName: name });
  ownClients.push(own);
  await connectAndPing(own, 5000);
  return { client: own, name };
}

/**
 * A store that waits for one replica, on a client of its own (its WAIT connections are named
 * `<name>:replay`), ready: one reservation was made.
 */
async function storeWith(waitTimeoutMs = 50, extra: { waitConnectionsPerMaster?: number } = {}) {
  const own = await ownClient();
  const store = new RedisReplayStore(own.client, { keyPrefix, minReplicas: 1, waitTimeoutMs, ...extra });
  await expect(store.reserve(unique('warm'), 'warm', 60_000)).resolves.toBe('reserved');
  return { store, name: own.name, client: own.client };
}

beforeAll(async () => {
  master = await startRedisServer();
  replica = await startReplica(master);
  client = clientFor(master, { commandTimeoutMs: 1000, metrics: metrics.metrics, logger, clientName: 'gw-test' });
  admin = await adminOf(master);
  await connectAndPing(client, 5000);
  await replicated();
});

afterAll(async () => {
  client?.destroy();
  for (const own of ownClients) own.destroy();
  for (const a of admins.values()) a.destroy();
  await replica?.stop();
  await master?.stop();
});

let contractStore: RedisReplayStore | undefined;
replayStoreContract('RedisReplayStore with GATEWAY_REDIS_REPLAY_MIN_REPLICAS=1', () => ({
  store: (contractStore ??= new RedisReplayStore(client, { keyPrefix, minReplicas: 1, waitTimeoutMs: 50 })),
  elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  // A frozen master: the SET itself times out.
  breakStore: async () => master.pause(),
  repairStore: async () => {
    master.resume();
    await waitFor(async () => (await client.command(['PING'])) === 'PONG', { message: 'master answers again' });
  },
  // A frozen replica: still connected as far as the master knows, but it acknowledges nothing.
  breakReplication: async () => replica.pause(),
  repairReplication: async () => {
    replica.resume();
    await replicated();
  },
}));

describe('replicated reservations (SPEC §5.2)', () => {
  it('a reservation is on the replica when it is reserved; SET and WAIT ran on the dedicated connections, not the shared one', async () => {
    const { store, name } = await storeWith();
    const ds = unique('ds');
    const before = await waitCalls();
    await expect(store.reserve(ds, 'req-1', 60_000)).resolves.toBe('reserved');
    // WAIT acknowledged: the replica already holds it, no polling needed.
    expect(Number(await (await adminOf(replica)).command(['EXISTS', `${keyPrefix}replay:${ds}/req-1`]))).toBe(1);
    expect(await waitCalls()).toBe(before + 1);
    const dedicated = await connectionsNamed(`${name}:replay`);
    expect(dedicated).toHaveLength(2);
    expect(dedicated.some((l) => / cmd=wait /.test(l))).toBe(true);
    expect((await connectionsNamed(name)).map((l) => / cmd=(\w+)/.exec(l)?.[1])).toEqual(['ping']);
    store.close();
  });

  it('replica stopped: not_replicated, the key is deleted, the same request id is reserved once the replica is back', async () => {
    const { store } = await storeWith();
    const ds = unique('ds');
    const key = `${keyPrefix}replay:${ds}/req-1`;
    await replica.stop();
    try {
      const { ms, result } = await timed(() => store.reserve(ds, 'req-1', 60_000));
      expect(result).toBe('not_replicated');
      // Bounded by the WAIT timeout (50 ms) plus the DEL, on a shared machine.
      expect(ms).toBeLessThan(1000);
      expect(await exists(key)).toBe(0);
      await expect(store.reserve(ds, 'req-1', 60_000)).resolves.toBe('not_replicated');
      const line = logger.lines.find((l) => l.message === 'replicated write not acknowledged');
      expect(line?.level).toBe('warn');
      expect(line?.fields).toMatchObject({ address: `127.0.0.1:${master.port}`, acknowledged: 0, required: 1, wait_timeout_ms: 50 });
    } finally {
      await replica.restart();
    }
    await replicated();
    await expect(store.reserve(ds, 'req-1', 60_000)).resolves.toBe('reserved');
    await expect(store.reserve(ds, 'req-1', 60_000)).resolves.toBe('duplicate');
    store.close();
  }, 30_000);

  it('replica cut off (its link killed and refused): not_replicated and deleted; reserved again once it re-attaches', async () => {
    const { store } = await storeWith();
    const replicaAdmin = await adminOf(replica);
    await replicaAdmin.command(['CONFIG', 'SET', 'masterauth', 'wrong-password']);
    await admin.command(['CLIENT', 'KILL', 'TYPE', 'replica']);
    const ds = unique('ds');
    try {
      await expect(store.reserve(ds, 'cut', 60_000)).resolves.toBe('not_replicated');
      expect(await exists(`${keyPrefix}replay:${ds}/cut`)).toBe(0);
    } finally {
      await replicaAdmin.command(['CONFIG', 'SET', 'masterauth', master.password]);
    }
    await replicated();
    await expect(store.reserve(ds, 'cut', 60_000)).resolves.toBe('reserved');
    store.close();
  }, 30_000);

  it('a replay is answered at once, without waiting for a WAIT that cannot succeed', async () => {
    const { store } = await storeWith(2000);
    const ds = unique('ds');
    await expect(store.reserve(ds, 'done', 60_000)).resolves.toBe('reserved');
    replica.pause();
    try {
      const { ms, result } = await timed(() => store.reserve(ds, 'done', 60_000));
      expect(result).toBe('duplicate');
      expect(ms).toBeLessThan(1000);
    } finally {
      replica.resume();
    }
    await replicated();
    store.close();
  }, 30_000);

  it('many concurrent reservations share few WAITs; while WAITs block, the shared client answers a session lookup at once', async () => {
    const { store, name, client: own } = await storeWith(1500);
    const sessions = new RedisSessionStore(own, { keyPrefix });
    const ds = unique('ds');
    await admin.command(['HSET', `${keyPrefix}session:${ds}`, 'user_id', 'u-batch']);
    const before = await waitCalls();
    replica.pause();
    let reservations: Promise<string>[] = [];
    try {
      // Three waves in three event-loop turns: the first two each start a WAIT (one connection
      // each), the third finds both waiting and joins the batch after them.
      const wave = (n: number) => Array.from({ length: 50 }, (_, i) => store.reserve(ds, `w${n}-${i}`, 60_000));
      reservations = wave(1);
      await new Promise((resolve) => setImmediate(resolve));
      reservations.push(...wave(2));
      await waitFor(async () => (await connectionsNamed(`${name}:replay`)).filter((l) => / flags=b /.test(l)).length === 2, { message: 'both WAIT connections blocked' });
      reservations.push(...wave(3));
      const settled = { count: 0 };
      for (const r of reservations) void r.then(() => (settled.count += 1));
      // The WAITs block for 1.5 s: a lookup on the same shared client is not behind them.
      const lookup = await timed(() => sessions.getRecord(ds));
      expect(lookup.result).toEqual({ user_id: 'u-batch' });
      expect(lookup.ms).toBeLessThan(500);
      expect(settled.count).toBe(0);
      // Only the two WAIT connections block, each in WAIT; the third wave waits in the process.
      const blocked = await connectionsNamed(`${name}:replay`);
      expect(blocked.map((l) => / cmd=(\w+)/.exec(l)?.[1])).toEqual(['wait', 'wait']);
      // The first two waves time out waiting for the frozen replica.
      expect(new Set(await Promise.all(reservations.slice(0, 100)))).toEqual(new Set(['not_replicated']));
    } finally {
      replica.resume();
    }
    // The third wave was sent after them, with one WAIT of its own, which the replica now answers.
    expect(await Promise.all(reservations.slice(100))).toEqual(Array.from({ length: 50 }, () => 'reserved'));
    expect(await waitCalls()).toBe(before + 3);
    store.close();
  }, 30_000);

  it('with one connection, reservations issued while its WAIT is in flight join the next WAIT', async () => {
    const { store } = await storeWith(300, { waitConnectionsPerMaster: 1 });
    const ds = unique('ds');
    const before = await waitCalls();
    const first = store.reserve(ds, 'first', 60_000);
    await new Promise((resolve) => setImmediate(resolve));
    const later = Array.from({ length: 40 }, (_, i) => store.reserve(ds, `later-${i}`, 60_000));
    await expect(first).resolves.toBe('reserved');
    expect(await Promise.all(later)).toEqual(Array.from({ length: 40 }, () => 'reserved'));
    expect(await waitCalls()).toBe(before + 2);
    store.close();
  });

  it('a master change (retarget) rejects reservations waiting on the old master (never confirmed) and sends new ones to the new master', async () => {
    const other = await startRedisServer({ password: master.password });
    const otherReplica = await startReplica(other);
    const { store, name, client: moving } = await storeWith(5000);
    try {
      await replicated(other);
      const ds = unique('ds');
      replica.pause();
      try {
        const pending = store.reserve(ds, 'moved', 60_000).catch((e: unknown) => e);
        await waitFor(async () => (await connectionsNamed(`${name}:replay`)).some((l) => / flags=b /.test(l)), { message: 'WAIT pending on the old master' });
        await moving.retarget(other.host, other.port);
        const error = await pending;
        // Never confirmed. Which command the destroyed connection reports depends on whether
        // this process had read the SET's reply before the retarget (Redis sent it before it
        // blocked on the WAIT, but a loaded event loop may not have handled it yet): the WAIT's
        // failure (the reservation is then withdrawn) or the SET's (it may or may not have run;
        // never withdrawn, since the key could be another request's). Both reject.
        expect(error).toBeInstanceOf(RedisCommandError);
        expect((error as Error).message).toMatch(/^redis (WAIT|SET) failed: /);
      } finally {
        replica.resume();
      }
      await expect(store.reserve(ds, 'after', 60_000)).resolves.toBe('reserved');
      expect(Number(await (await adminOf(other)).command(['EXISTS', `${keyPrefix}replay:${ds}/after`]))).toBe(1);
      expect(await exists(`${keyPrefix}replay:${ds}/after`)).toBe(0);
      expect(await connectionsNamed(`${name}:replay`)).toEqual([]);
      store.close();
    } finally {
      await otherReplica.stop();
      await other.stop();
      await replicated();
    }
  }, 30_000);

  it('closing the store closes its dedicated connections; a reservation then rejects', async () => {
    const { store, name } = await storeWith();
    expect(await connectionsNamed(`${name}:replay`)).toHaveLength(2);
    store.close();
    await expect(store.reserve(unique('ds'), 'r', 60_000)).rejects.toThrow('redis SET failed: the client is closed');
    await waitFor(async () => (await connectionsNamed(`${name}:replay`)).length === 0, { message: 'replay connections closed' });
  });
});

// Failover drill (issue 21): does the gateway keep its promises through a Redis failover?
// The built gateway binary runs against
//   (a) Sentinel: 1 master + 2 replicas + 3 Sentinels (stream fan-out), and
//   (b) the Cluster harness: 3 masters + 1 replica each (routed fan-out, SPEC §9),
// under a steady load of distinct signed commands (~150/s) into a COUNTING downstream (in this
// process: executions per device session and request id), client events published throughout
// to users with open push streams, and per round one device session revoked just before the
// failover. Scenarios (each `--rounds` times):
//   sentinel-failover  SENTINEL FAILOVER (planned, no fault)
//   sentinel-kill      both replicas SIGSTOPped, their links cut (CLIENT KILL TYPE replica on the
//                      master), 700 ms of writes only the master has (the revocation among them),
//                      SIGKILL of the master, replicas SIGCONTed: Sentinel promotes one of two
//                      equally stale replicas
//   cluster-force      CLUSTER FAILOVER FORCE on the replica of the master that holds the
//                      session-events stream
//   cluster-kill       that replica SIGSTOPped, its link cut, 700 ms, SIGKILL of the master,
//                      replica SIGCONTed (the cluster promotes it after cluster-node-timeout)
//   sentinel-cli, cluster-cli   `edge-gateway redis failover` (planned, the safe way; opt-in)
// After each failover every command sent during the round is replayed byte for byte. Per round:
//   runTwice        commands the downstream executed more than once            (target 0)
//   revokedAccepted commands of the revoked session answered OK after the trigger (target 0)
//   lostUntold      (stream, event) pairs: an event acknowledged to the publisher for the
//                   stream's user that the stream neither received nor was told it may have
//                   missed (`gateway.resume_incomplete` during the round)       (target 0)
// and, to explain them: failed commands by code and message (UNAVAILABLE 'replay store not
// durable' is allowed), the gap from the trigger to the first success, acknowledged events the
// new master no longer holds, whether the revocation is on the new master, gateway metrics.
//
//   node bench/failover-drill.mjs [--scenarios sentinel-failover,sentinel-kill,cluster-force,cluster-kill]
//     [--rounds 5] [--rate 150] [--users 12] [--events-per-sec 40] [--observe-ms 10000]
//     [--gateway <path of a built main.js>] [--durable] [--gateway-env K=V,...] [--tag before]
//   (BENCH_TAG or --tag names the result file bench/results/failover-drill-<tag>.json)
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { CommandHandlerService, GatewayEvent } from '@edge-gateway/adapters-grpc/generated';
import { createRedisClusterClient, connectAndPing, keySlot, routedUserKeys } from '@edge-gateway/adapters-redis';
import { connectPublisher } from '@edge-gateway/publisher';
import { redisCommand, startRedisCluster, startSentinelTopology } from '@edge-gateway/test-utils';
import {
  GatewayChild,
  MAIN,
  REPO_ROOT,
  closeAll,
  connectRedis,
  eventIdOf,
  gatewayEnv,
  machineInfo,
  machineSnapshot,
  makeDevices,
  num,
  openStreams,
  parseOptions,
  GATEWAY_ENV_OPTION,
  rawClients,
  revokeSession,
  signedCommandWithId,
  signedSubscribe,
  sleep,
  step,
  writeResult,
  writeSessions,
  writeSignerKey,
} from './lib.mjs';

const PREFIX = 'gateway:';
const SESSION_EVENTS = 'gateway:session-events';
const CLIENT_EVENTS = 'gateway:client-events';
const INCOMPLETE = 'gateway.resume_incomplete';
const ROUTE = 'drill.';
const CLI = join(REPO_ROOT, 'apps/cli/dist/cli.js');
const CODE_NAMES = Object.fromEntries(Object.entries(status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k]));
const ALL_SCENARIOS = ['sentinel-failover', 'sentinel-kill', 'cluster-force', 'cluster-kill', 'sentinel-cli', 'cluster-cli'];

// ---------------------------------------------------------------------------------------
// The counting downstream and the command traffic

/** A CommandHandler that answers `ok` and counts executions per `device_session_id/request_id`. */
async function startCountingDownstream() {
  const counts = new Map();
  const server = new Server();
  server.addService(CommandHandlerService, {
    execute(call, callback) {
      const key = `${call.request.deviceSessionId}/${call.request.requestId}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      callback(null, { resultCode: 'ok', payload: Buffer.alloc(0) });
    },
  });
  const port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, executions: (ds, rid) => counts.get(`${ds}/${rid}`) ?? 0, stop: () => server.forceShutdown() };
}

/** A command's outcome as counted in the results: `OK`, or the status name and message (grpc-js's own deadline text folded into one). */
function outcomeName(code, details) {
  if (code === 0) return 'OK';
  if (code === status.DEADLINE_EXCEEDED && details.startsWith('Deadline exceeded after')) return 'DEADLINE_EXCEEDED (client deadline, no answer)';
  return `${CODE_NAMES[code]} ${details}`;
}

/** One ExecuteCommand of pre-encoded bytes; resolves `{ code, details, endedAt }` (code 0 = OK). */
function execute(client, bytes, timeoutMs = 5000) {
  return new Promise((resolve) => {
    try {
      client.executeCommand(bytes, { deadline: Date.now() + timeoutMs }, (err) => resolve({ code: err ? err.code : 0, details: err ? err.details : '', endedAt: Date.now() }));
    } catch (error) {
      // A client closed while a round that failed is being torn down: that round's own error is the one to report.
      resolve({ code: status.CANCELLED, details: `not sent: ${error instanceof Error ? error.message : String(error)}`, endedAt: Date.now() });
    }
  });
}

/** Open-loop command load: `rate` distinct signed commands per second over `devices`, each recorded. */
class CommandLoad {
  constructor(clients, devices, rate) {
    this.clients = clients;
    this.devices = devices;
    this.rate = rate;
    this.sent = [];
    this.pending = new Set();
    this.n = 0;
  }
  start() {
    const t0 = performance.now();
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) / 1000) * this.rate);
      // A stalled event loop does not turn into a burst of more than 50 ms worth.
      if (due - this.n > this.rate / 20) this.n = due - Math.ceil(this.rate / 20);
      while (this.n < due) this.sendOne();
    }, 10);
  }
  sendOne() {
    const device = this.devices[this.n % this.devices.length];
    const client = this.clients[this.n % this.clients.length];
    this.n += 1;
    const { bytes, requestId } = signedCommandWithId(device, `${ROUTE}load`, Buffer.from('x'));
    const record = { ds: device.deviceSessionId, rid: requestId, bytes, sentAt: Date.now(), endedAt: 0, code: -1, details: '', client };
    this.sent.push(record);
    const p = execute(client, bytes).then((r) => Object.assign(record, r));
    this.pending.add(p);
    void p.then(() => this.pending.delete(p));
  }
  async stop() {
    clearInterval(this.timer);
    await Promise.all(this.pending);
  }
}

/** Replays `records` byte for byte, `concurrency` at a time; resolves the answers by code name. */
async function replay(records, concurrency = 32) {
  const answers = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < records.length) {
        const r = records[next++];
        const { code, details } = await execute(r.client, r.bytes);
        const name = outcomeName(code, details);
        answers[name] = (answers[name] ?? 0) + 1;
        if (next % 200 === 0) debug('replay progress', next, JSON.stringify(answers));
      }
    }),
  );
  return answers;
}

// ---------------------------------------------------------------------------------------
// Push streams: one per streaming device, reopened with resume after an end

class Streams {
  constructor(clients, devices) {
    this.clients = clients;
    this.list = devices.map((device) => ({ device, userId: device.userId, received: new Map(), lastId: '', incomplete: [], ends: [], call: undefined }));
  }
  async open() {
    await Promise.all(this.list.map((s, i) => this.openOne(s, i)));
  }
  openOne(s, i) {
    const opened = openStreams([this.clients[i % this.clients.length]], [signedSubscribe(s.device, Date.now(), s.lastId)], {
      onEvent: (buf) => {
        const id = eventIdOf(buf);
        if (id !== '') {
          s.received.set(id, Date.now());
          s.lastId = id;
          return;
        }
        const event = GatewayEvent.decode(buf);
        if (event.eventType === INCOMPLETE) s.incomplete.push(Date.now());
      },
      onEnd: (_i, error) => {
        s.ends.push({ at: Date.now(), code: error?.code ?? 0, details: error?.details ?? '' });
        if (!this.closed) setTimeout(() => void this.openOne(s, i).catch(() => undefined), 200);
      },
      timeoutMs: 30_000,
    });
    s.call = opened.calls[0];
    return opened.ready.catch(() => undefined);
  }
  close() {
    this.closed = true;
    closeAll(this.list.map((s) => s.call), []);
  }
}

// ---------------------------------------------------------------------------------------
// Metrics of the gateway (sums over labels), for per-round deltas

const METRICS = [
  'gateway_stream_history_diverged_total',
  'gateway_revocations_reasserted_total',
  'gateway_replay_reservations_reasserted_total',
  'gateway_push_resumes_incomplete_total',
  'gateway_stream_subscriber_reconnects_total',
];
async function scrape(adminHttp) {
  const text = await fetch(`http://${adminHttp}/metrics`).then((r) => r.text()).catch(() => '');
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m === null) continue;
    const [, name, labels = '', value] = m;
    if (METRICS.includes(name)) out[name] = (out[name] ?? 0) + Number(value);
    // Reservation outcomes by label (replicated reservations, when the build has them).
    if (name === 'gateway_replay_reservations_total') {
      const outcome = /outcome="([^"]+)"/.exec(labels)?.[1] ?? 'all';
      out[`replay_${outcome}`] = (out[`replay_${outcome}`] ?? 0) + Number(value);
    }
  }
  return out;
}
const delta = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]).filter(([, v]) => v !== 0));

/** Runs the built CLI (`edge-gateway …`) with `env`; resolves `{ code, stdout, stderr }`. */
function runCli(args, env, timeoutMs = 60_000) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Orders stream ids `<ms>-<seq>`. */
const compareIds = (a, b) => {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am - bm || as - bs;
};

const debug = (...a) => {
  if (process.env.DRILL_DEBUG === '1') console.log(`    [${new Date().toISOString().slice(11, 23)}]`, ...a);
};

const withTimeout = (promise, ms, what) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms))]);

// ---------------------------------------------------------------------------------------
// Topologies

/** Sentinel: 1 master, 2 replicas, 3 Sentinels; stream fan-out; a publisher that follows +switch-master. */
async function sentinelRig() {
  const topo = await startSentinelTopology({ replicas: 2, sentinelPassword: 'drill-sentinel' });
  const env = {
    GATEWAY_REDIS_MASTER_ADDR: undefined,
    GATEWAY_REDIS_SENTINEL_ADDRS: topo.sentinelAddrs,
    GATEWAY_REDIS_SENTINEL_MASTER_NAME: topo.masterName,
    GATEWAY_REDIS_SENTINEL_PASSWORD: topo.sentinelPassword,
    GATEWAY_REDIS_PASSWORD: topo.password,
  };
  // The writer side (auth service, publishers): one connection to the master Sentinel names,
  // moved on +switch-master (as a Sentinel-aware client does) or after an error.
  let target = await topo.master();
  let conn = await connectRedis({ port: target.port, password: topo.password });
  let moving;
  const moveTo = (port) => {
    moving ??= (async () => {
      try {
        const next = await connectRedis({ port, password: topo.password });
        const prev = conn;
        conn = next;
        target = { port };
        prev.destroy?.();
      } catch {
        // next error retries
      } finally {
        moving = undefined;
      }
    })();
    return moving;
  };
  const watcher = await connectRedis({ port: topo.sentinels[0].port, password: topo.sentinelPassword });
  await watcher.subscribe('+switch-master', (message) => void moveTo(Number(message.split(' ')[4])));
  const writer = async (fn) => {
    try {
      return await withTimeout(fn(conn), 2000, 'redis write');
    } catch (error) {
      const { port } = await topo.master().catch(() => target);
      if (port !== target.port) await moveTo(port);
      throw error;
    }
  };
  const node = (port) => ({ port, cmd: (args) => redisCommand('127.0.0.1', port, topo.password, args, 2000) });
  return {
    kind: 'sentinel',
    env,
    cliEnv: env,
    redisForSetup: () => conn,
    async revoke(device) {
      return writer((c) => revokeSession(c, device));
    },
    async publish(userId, durable) {
      return writer(async (c) => {
        const id = await c.xAdd(CLIENT_EVENTS, '*', { user_id: userId, event_type: 'drill.event', payload_base64: '' });
        if (durable && Number(await c.sendCommand(['WAIT', '1', '200'])) < 1) throw new Error('not replicated');
        return id;
      });
    },
    async masterPort() {
      return (await topo.master()).port;
    },
    /** Which of the acknowledged events (`{ userId, id }`) the current master holds, as `user/id` keys. */
    async heldEvents(events) {
      if (events.length === 0) return new Set();
      const ids = events.map((e) => e.id).sort(compareIds);
      const found = await node((await topo.master()).port).cmd(['XRANGE', CLIENT_EVENTS, ids[0], ids.at(-1)]);
      const userOf = new Map(events.map((e) => [e.id, e.userId]));
      return new Set((Array.isArray(found) ? found : []).map(([id]) => `${userOf.get(id)}/${id}`));
    },
    async sessionStatus(device) {
      return String(await node((await topo.master()).port).cmd(['HGET', `${PREFIX}session:${device.deviceSessionId}`, 'status']));
    },
    /** Devices are any: one master holds every key. */
    victimFits: () => true,
    userFits: () => true,
    scenarios: {
      'sentinel-failover': async (ctx) => {
        const old = await topo.masterNode();
        await ctx.revokeAndConfirm(2000);
        const triggerAt = Date.now();
        await topo.failover(30_000);
        return { triggerAt, promotedAt: Date.now(), old: old.port };
      },
      'sentinel-cli': async (ctx) => {
        const old = await topo.masterNode();
        await ctx.revokeAndConfirm(2000);
        const triggerAt = Date.now();
        const result = await runCli(['redis', 'failover'], env);
        if (result.code !== 0) throw new Error(`edge-gateway redis failover exited ${result.code}: ${result.stdout}${result.stderr}`);
        await topo.waitForNewMaster(old.port, 30_000);
        return { triggerAt, promotedAt: Date.now(), old: old.port, cli: result.stdout.trim().split('\n').at(-1) };
      },
      'sentinel-kill': async (ctx) => {
        const old = await topo.masterNode();
        const replicas = await topo.replicaNodes();
        // Both replicas lag: stopped first, then their links cut, so neither gets the next 700 ms.
        for (const r of replicas) r.pause();
        const cutAt = Date.now();
        await node(old.port).cmd(['CLIENT', 'KILL', 'TYPE', 'replica']);
        await sleep(300);
        await ctx.revokeAndConfirm(cutAt + 650 - Date.now());
        await sleep(Math.max(0, cutAt + 700 - Date.now()));
        const triggerAt = Date.now();
        await old.kill();
        for (const r of replicas) r.resume();
        await topo.waitForNewMaster(old.port, 30_000);
        return { triggerAt, promotedAt: Date.now(), old: old.port, lagMs: triggerAt - cutAt };
      },
    },
    /** Back to 1 master + 2 linked replicas. */
    async restore() {
      for (const n of topo.nodes) {
        if (!n.running) await topo.rejoinAsReplica(n, 60_000);
      }
      const { port } = await topo.master();
      for (const n of topo.nodes) if (n.port !== port) await topo.waitForReplicaLink(n, 60_000);
    },
    async stop() {
      await watcher.disconnect().catch(() => undefined);
      conn.destroy?.();
      await topo.stop();
    },
  };
}

/** Cluster: 3 masters with 1 replica each; routed fan-out; the master holding session-events is failed over. */
async function clusterRig() {
  const cluster = await startRedisCluster({ replicasPerMaster: 1 });
  const env = {
    GATEWAY_REDIS_MASTER_ADDR: undefined,
    GATEWAY_REDIS_CLUSTER_NODES: cluster.seeds,
    GATEWAY_REDIS_PASSWORD: cluster.password,
    GATEWAY_PUSH_FANOUT: 'routed',
  };
  const client = createRedisClusterClient({ nodes: [{ host: '127.0.0.1', port: cluster.nodes[0].port }], password: cluster.password, commandTimeoutMs: 2000 });
  await connectAndPing(client, 10_000);
  // lib's session helpers speak node-redis (hSet, xAdd): the same two commands on the cluster client.
  const redis = {
    hSet: (key, fields) => client.command(['HSET', key, ...Object.entries(fields).flat().map(String)]),
    xAdd: (key, id, fields) => client.command(['XADD', key, id, ...Object.entries(fields).flat().map(String)]),
  };
  const publisher = await connectPublisher({ nodes: cluster.seeds, password: cluster.password });
  const sessionEventsSlot = keySlot(SESSION_EVENTS);
  let masters = (await cluster.topology()).filter((n) => n.role === 'master');
  const slotOn = (slot, node) => node.slots.some(([a, b]) => slot >= a && slot <= b);
  const target = () => masters.find((m) => slotOn(sessionEventsSlot, m));
  const refresh = async () => (masters = (await cluster.topology()).filter((n) => n.role === 'master' && !n.failing));
  const waitPromoted = async (port, timeoutMs) => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const info = String(await cluster.command(port, ['INFO', 'replication']).catch(() => ''));
      if (info.includes('role:master')) return;
      if (Date.now() > end) throw new Error(`port ${port} not promoted within ${timeoutMs} ms`);
      await sleep(50);
    }
  };
  const replicaOf = async (master) => (await cluster.topology()).find((n) => n.role === 'replica' && n.masterId === master.id && !n.failing);
  return {
    kind: 'cluster',
    env,
    cliEnv: env,
    redisForSetup: () => redis,
    async revoke(device) {
      return revokeSession(redis, device);
    },
    async publish(userId, durable) {
      const result = await withTimeout(publisher.publish({ userId, eventType: 'drill.event', payload: Buffer.alloc(0), ...(durable ? { durable: true } : {}) }), 3000, 'publish');
      return result.id;
    },
    async masterPort() {
      await refresh();
      return target().port;
    },
    async heldEvents(events) {
      const held = new Set();
      for (const userId of new Set(events.map((e) => e.userId))) {
        const ids = events.filter((e) => e.userId === userId).map((e) => e.id).sort(compareIds);
        const found = await client.command(['XRANGE', routedUserKeys(PREFIX, userId).history, ids[0], ids.at(-1)]);
        for (const [id] of Array.isArray(found) ? found : []) held.add(`${userId}/${id}`);
      }
      return held;
    },
    async sessionStatus(device) {
      return String(await client.command(['HGET', `${PREFIX}session:${device.deviceSessionId}`, 'status']));
    },
    /** The revoked record must live on the master that is failed over (with the session-events stream). */
    victimFits: (device) => slotOn(keySlot(`${PREFIX}session:${device.deviceSessionId}`), target()),
    /** Half the streaming users on the failed-over master, half elsewhere. */
    userFits: (userId, i) => slotOn(keySlot(routedUserKeys(PREFIX, userId).channel), target()) === (i % 2 === 0),
    scenarios: {
      'cluster-force': async (ctx) => {
        await refresh();
        const old = target();
        const replica = await replicaOf(old);
        await ctx.revokeAndConfirm(2000);
        const triggerAt = Date.now();
        await cluster.command(replica.port, ['CLUSTER', 'FAILOVER', 'FORCE']);
        await waitPromoted(replica.port, 30_000);
        return { triggerAt, promotedAt: Date.now(), old: old.port, promoted: replica.port };
      },
      'cluster-cli': async (ctx) => {
        await refresh();
        const old = target();
        const replica = await replicaOf(old);
        await ctx.revokeAndConfirm(2000);
        const triggerAt = Date.now();
        const result = await runCli(['redis', 'failover', '--node', old.address], env);
        if (result.code !== 0) throw new Error(`edge-gateway redis failover exited ${result.code}: ${result.stdout}${result.stderr}`);
        await waitPromoted(replica.port, 30_000);
        return { triggerAt, promotedAt: Date.now(), old: old.port, promoted: replica.port, cli: result.stdout.trim().split('\n').at(-1) };
      },
      'cluster-kill': async (ctx) => {
        await refresh();
        const old = target();
        const replica = await replicaOf(old);
        const oldNode = cluster.node(old.port);
        const replicaNode = cluster.node(replica.port);
        replicaNode.pause();
        const cutAt = Date.now();
        await cluster.command(old.port, ['CLIENT', 'KILL', 'TYPE', 'replica']);
        await sleep(300);
        await ctx.revokeAndConfirm(cutAt + 650 - Date.now());
        await sleep(Math.max(0, cutAt + 700 - Date.now()));
        const triggerAt = Date.now();
        await oldNode.kill();
        replicaNode.resume();
        await waitPromoted(replica.port, 30_000);
        return { triggerAt, promotedAt: Date.now(), old: old.port, promoted: replica.port, lagMs: triggerAt - cutAt };
      },
    },
    async restore() {
      for (const n of cluster.nodes) if (!n.running) await n.restart();
      await cluster.waitUntilStable(90_000);
      await refresh();
    },
    async stop() {
      await publisher.close().catch(() => undefined);
      client.destroy();
      await cluster.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------
// One round

async function runRound(rig, scenario, round, ctx) {
  const { load, streams, published, gateway, params, victims } = ctx;
  const roundStart = Date.now();
  const sentBefore = load.sent.length;
  const metricsBefore = await scrape(gateway.addresses.adminHttp);
  const victim = victims.shift();
  if (victim === undefined) throw new Error('out of victim sessions');
  // The victim is an active, cached session: it runs commands until revoked.
  // Every 100 ms, not waiting for the answer: a slow gateway does not thin out the probes.
  const probes = [];
  const inFlight = new Set();
  const probeTimer = setInterval(() => {
    const { bytes } = signedCommandWithId(victim, `${ROUTE}victim`, Buffer.from('v'));
    const probe = { sentAt: Date.now(), code: -1, details: '', endedAt: 0 };
    const p = execute(ctx.clients[1 % ctx.clients.length], bytes, 3000).then((r) => {
      Object.assign(probe, r);
      probes.push(probe);
    });
    inFlight.add(p);
    void p.then(() => inFlight.delete(p));
  }, 100);
  await sleep(params.warmMs);

  let revokedAt;
  let revokeSeen;
  const scenarioCtx = {
    /** Writes the revocation (record, then snapshot) and waits (bounded) until the gateway refuses the session. */
    revokeAndConfirm: async (budgetMs) => {
      const end = Date.now() + Math.max(0, budgetMs);
      await rig.revoke(victim);
      revokedAt = Date.now();
      const refused = () => probes.some((p) => p.sentAt > revokedAt && p.code === status.FAILED_PRECONDITION);
      while (Date.now() < end && !refused()) await sleep(10);
      revokeSeen = refused();
    },
  };
  debug('trigger', scenario);
  const trigger = await rig.scenarios[scenario](scenarioCtx);
  debug('promoted', trigger);
  await sleep(params.observeMs);
  const observedUntil = Date.now();
  clearInterval(probeTimer);
  await Promise.all(inFlight);
  probes.sort((a, b) => a.sentAt - b.sentAt);

  // Replay every command of the round, byte for byte.
  const roundRecords = load.sent.slice(sentBefore).filter((r) => r.sentAt <= observedUntil);
  await Promise.all([...load.pending].slice(0)); // in-flight originals first
  debug('gateway log tail', gateway.tail.slice(-3000));
  debug('replaying', roundRecords.length);
  const replayAnswers = await replay(roundRecords);
  debug('replayed', replayAnswers);
  await sleep(500);
  const runTwice = roundRecords.filter((r) => ctx.downstream.executions(r.ds, r.rid) > 1);

  // Events: let delivery settle, then judge each (stream, acknowledged event of its user).
  await sleep(params.settleMs);
  const windowEnd = observedUntil - 1000;
  const acked = published.filter((p) => p.at >= roundStart && p.at <= windowEnd);
  let pairs = 0;
  let received = 0;
  let told = 0;
  const lostUntold = [];
  for (const s of streams.list) {
    const mine = acked.filter((p) => p.userId === s.userId);
    const wasTold = s.incomplete.some((at) => at >= roundStart);
    for (const p of mine) {
      pairs += 1;
      if (s.received.has(p.id)) received += 1;
      else if (wasTold) told += 1;
      else lostUntold.push({ stream: s.device.deviceSessionId, user: s.userId, id: p.id, ackedMsAfterTrigger: p.at - trigger.triggerAt });
    }
  }
  const held = await rig.heldEvents(acked).catch(() => undefined);
  const vanished = held === undefined ? null : acked.filter((p) => !held.has(`${p.userId}/${p.id}`)).length;
  const lostUntoldEvents = new Set(lostUntold.map((l) => `${l.user}/${l.id}`)).size;

  // Commands: failures from a second before the trigger to the end of the observation.
  const window = load.sent.slice(sentBefore).filter((r) => r.sentAt >= trigger.triggerAt - 1000 && r.sentAt <= observedUntil && r.code !== -1);
  const failures = {};
  for (const r of window) if (r.code !== 0) failures[outcomeName(r.code, r.details)] = (failures[outcomeName(r.code, r.details)] ?? 0) + 1;
  const firstOk = window.find((r) => r.code === 0 && r.sentAt >= trigger.triggerAt);
  const lastFail = window.findLast((r) => r.code !== 0);
  const accepted = probes.filter((p) => p.sentAt >= trigger.triggerAt && p.code === 0);
  const probeCodes = {};
  for (const p of probes.filter((x) => x.sentAt >= trigger.triggerAt)) probeCodes[outcomeName(p.code, p.details)] = (probeCodes[outcomeName(p.code, p.details)] ?? 0) + 1;
  const row = {
    scenario,
    round,
    lagMs: trigger.lagMs ?? null,
    promotedMsAfterTrigger: trigger.promotedAt - trigger.triggerAt,
    cli: trigger.cli,
    commands: { sent: roundRecords.length, failed: Object.values(failures).reduce((a, b) => a + b, 0), failures },
    gapMs: firstOk === undefined ? null : firstOk.endedAt - trigger.triggerAt,
    lastFailureMsAfterTrigger: lastFail === undefined ? null : lastFail.endedAt - trigger.triggerAt,
    replay: { replayed: roundRecords.length, answers: replayAnswers },
    runTwice: runTwice.length,
    runTwiceSentMsAfterTrigger: runTwice.length === 0 ? null : [Math.min(...runTwice.map((r) => r.sentAt - trigger.triggerAt)), Math.max(...runTwice.map((r) => r.sentAt - trigger.triggerAt))],
    revocation: {
      session: victim.deviceSessionId,
      writtenMsBeforeTrigger: revokedAt === undefined ? null : trigger.triggerAt - revokedAt,
      refusedBeforeTrigger: revokeSeen,
      onNewMaster: await rig.sessionStatus(victim).catch((e) => `error: ${e.message}`),
      probesAfterTrigger: probeCodes,
    },
    revokedAccepted: accepted.length,
    revokedAcceptedMsAfterPromotion: accepted.length === 0 ? null : [accepted[0].sentAt - trigger.promotedAt, accepted.at(-1).sentAt - trigger.promotedAt],
    events: { acked: acked.length, streamPairs: pairs, received, toldIncomplete: told, vanishedFromHistory: vanished, lostUntoldEvents },
    lostUntold: lostUntold.length,
    lostUntoldSample: lostUntold.slice(0, 5),
    streamEnds: streams.list.reduce((n, s) => n + s.ends.filter((e) => e.at >= roundStart).length, 0),
    metrics: delta(metricsBefore, await scrape(gateway.addresses.adminHttp)),
    loadavg1: machineSnapshot().loadavg1,
  };
  debug('restoring');
  await rig.restore();
  debug('restored');
  return row;
}

// ---------------------------------------------------------------------------------------

async function runRig(makeRig, scenarios, params, signer, main) {
  const rig = await makeRig();
  const downstream = await startCountingDownstream();
  const rows = [];
  let gateway;
  let clients;
  let streams;
  let load;
  let publishing = true;
  let publishLoop;
  try {
    // Sessions: load devices, streaming devices (one per user), victims (one per round).
    const loadDevices = makeDevices(params.loadDevices, { label: `dl${rig.kind[0]}` });
    // Candidates with a user each; the rig picks those whose keys live where it needs them.
    const candidates = makeDevices(Math.max(64, params.users * 8), { label: `ds${rig.kind[0]}` });
    const streamDevices = [];
    for (const d of candidates) if (streamDevices.length < params.users && rig.userFits(d.userId, streamDevices.length)) streamDevices.push(d);
    const victims = makeDevices(params.rounds * scenarios.length * 6, { label: `dv${rig.kind[0]}` })
      .filter((d) => rig.victimFits(d))
      .slice(0, params.rounds * scenarios.length);
    if (streamDevices.length < params.users || victims.length < params.rounds * scenarios.length) throw new Error('not enough devices whose keys fit the rig');
    await writeSessions(rig.redisForSetup(), [...loadDevices, ...streamDevices, ...victims]);

    gateway = new GatewayChild(
      gatewayEnv({ port: 0, password: '' }, signer, {
        ...rig.env,
        GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
        GATEWAY_DOWNSTREAM_ROUTES: `${ROUTE}=127.0.0.1:${downstream.port}`,
      }),
      { main },
    );
    await gateway.started(30_000);
    clients = await rawClients(gateway.addresses.grpc, 4);
    streams = new Streams(clients, streamDevices);
    await step(`opening ${streamDevices.length} streams (${rig.kind})`, () => streams.open());

    const published = [];
    const users = streamDevices.map((d) => d.userId);
    publishLoop = (async () => {
      const every = 1000 / params.eventsPerSec;
      for (let n = 0; publishing; n += 1) {
        const userId = users[n % users.length];
        const t = Date.now();
        try {
          const id = await rig.publish(userId, params.durable);
          published.push({ userId, id, at: Date.now() });
        } catch {
          await sleep(50);
        }
        await sleep(Math.max(0, every - (Date.now() - t)));
      }
    })();
    load = new CommandLoad(clients, loadDevices, params.rate);
    load.start();
    const ctx = { load, streams, published, gateway, params, victims, clients, downstream };
    for (const scenario of scenarios) {
      for (let round = 0; round < params.rounds; round += 1) {
        const row = await runRound(rig, scenario, round, ctx);
        rows.push(row);
        console.log(
          `  ${scenario} #${round}: runTwice ${row.runTwice}, revokedAccepted ${row.revokedAccepted} (revocation on new master: ${row.revocation.onNewMaster}), ` +
            `lostUntold ${row.lostUntold} (acked ${row.events.acked}, vanished ${row.events.vanishedFromHistory}, told ${row.events.toldIncomplete}); ` +
            `failed ${row.commands.failed}/${row.commands.sent} ${JSON.stringify(row.commands.failures)}; gap ${row.gapMs} ms; promoted +${row.promotedMsAfterTrigger} ms; load ${row.loadavg1.toFixed(1)}`,
        );
      }
    }
  } finally {
    publishing = false;
    await load?.stop();
    await publishLoop;
    streams?.close();
    closeAll([], clients ?? []);
    await gateway?.stop();
    downstream.stop();
    await rig.stop();
  }
  return rows;
}

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = { quick: 'boolean', scenarios: { list: ALL_SCENARIOS }, rounds: 'number', rate: 'number', users: 'number', 'events-per-sec': 'number', 'observe-ms': 'number', 'load-devices': 'number', 'settle-ms': 'number', 'warm-ms': 'number', gateway: 'string', durable: 'boolean', tag: 'string', ...GATEWAY_ENV_OPTION };

export async function runFailoverDrill(argv) {
  const args = parseOptions('failover-drill.mjs', OPTIONS, argv);
  const scenarios = typeof args.scenarios === 'string' ? args.scenarios.split(',') : ALL_SCENARIOS.slice(0, 4);
  for (const s of scenarios) if (!ALL_SCENARIOS.includes(s)) throw new Error(`unknown scenario "${s}" (have ${ALL_SCENARIOS.join(', ')})`);
  const params = {
    scenarios,
    rounds: num(args, 'rounds', args.quick ? 1 : 5),
    rate: num(args, 'rate', 150),
    users: num(args, 'users', 12),
    loadDevices: num(args, 'load-devices', 24),
    eventsPerSec: num(args, 'events-per-sec', 40),
    warmMs: num(args, 'warm-ms', 3000),
    observeMs: num(args, 'observe-ms', 10_000),
    settleMs: num(args, 'settle-ms', 2000),
    durable: args.durable === true,
    gateway: typeof args.gateway === 'string' ? args.gateway : MAIN,
  };
  console.log(`failover drill ${JSON.stringify(params)}`);
  const before = machineSnapshot();
  const signer = writeSignerKey();
  const rows = [];
  const sentinel = scenarios.filter((s) => s.startsWith('sentinel-'));
  const cluster = scenarios.filter((s) => s.startsWith('cluster-'));
  if (sentinel.length > 0) rows.push(...(await runRig(sentinelRig, sentinel, params, signer, params.gateway)));
  if (cluster.length > 0) rows.push(...(await runRig(clusterRig, cluster, params, signer, params.gateway)));
  const worst = (key) => Math.max(...rows.map((r) => r[key]));
  const summary = Object.fromEntries(
    scenarios.map((s) => {
      const mine = rows.filter((r) => r.scenario === s);
      return [s, { runTwice: mine.map((r) => r.runTwice), revokedAccepted: mine.map((r) => r.revokedAccepted), lostUntold: mine.map((r) => r.lostUntold), failed: mine.map((r) => r.commands.failed), gapMs: mine.map((r) => r.gapMs) }];
    }),
  );
  const out = {
    benchmark: 'failover-drill',
    params,
    machine: machineInfo(),
    noise: { before, after: machineSnapshot() },
    results: {
      summary,
      rounds: rows,
      targets: {
        runTwice: { target: '0 commands run twice in every round', value: worst('runTwice'), met: worst('runTwice') === 0 },
        revokedAccepted: { target: '0 revoked sessions accepted in every round', value: worst('revokedAccepted'), met: worst('revokedAccepted') === 0 },
        lostUntold: { target: '0 acknowledged events a live stream neither received nor was told it missed', value: worst('lostUntold'), met: worst('lostUntold') === 0 },
      },
    },
  };
  // --tag names the file like BENCH_TAG does (failover-drill-<tag>.json); BENCH_TAG still applies without it.
  const tag = typeof args.tag === 'string' ? args.tag : undefined;
  console.log(`  written ${writeResult(tag === undefined ? 'failover-drill' : `failover-drill-${tag}`, out)}`);
  for (const [key, t] of Object.entries(out.results.targets)) console.log(`  ${t.met ? 'met   ' : 'MISSED'} ${key}: ${t.value} (${t.target})`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runFailoverDrill(process.argv.slice(2));
  process.exit(0);
}

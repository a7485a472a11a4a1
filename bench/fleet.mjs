// Fleet benchmark (issue 14): G gateway processes on a 3-master Redis Cluster, one publisher,
// stream fan-out against routed fan-out. Every event targets one user held by one process, so
// each event is delivered once; what grows with G is what Redis (and every process) spends on
// events the process does not hold.
//
// Per mode and G it reports, per delivered event:
// - Redis bytes sent (Δ total_net_output_bytes summed over the masters; includes the replies
//   to the publisher, a few dozen bytes per event in both modes),
// - client-events entries read by the gateways (Δ gateway_stream_entries_consumed_total
//   {stream="client_events"} summed over the processes: every XREAD entry in stream mode,
//   every channel message and history entry handled in routed mode),
// - Redis CPU (Δ used_cpu_user + used_cpu_sys over the masters) and gateway CPU (Δ user+sys of
//   the gateway processes).
//
//   node bench/fleet.mjs [--gateways 1,2,4] [--users-per-gateway 50] [--rate 300] [--seconds 5]
//
// Needs a build (`npx tsc -b`), redis-server and redis-cli. Writes bench/results/fleet.json.
import {
  GatewayChild,
  closeAll,
  cpuSeconds,
  fmt,
  machineInfo,
  machineSnapshot,
  makeDevices,
  num,
  openStreams,
  parseOptions,
  rawClients,
  signedSubscribe,
  sleep,
  writeResult,
  writeSignerKey,
} from './lib.mjs';
import { startRedisCluster } from '@edge-gateway/test-utils';
import { RedisRoutedPublisher, connectAndPing, createRedisClusterClient } from '@edge-gateway/adapters-redis';

const args = parseOptions('fleet.mjs', { quick: 'boolean', gateways: 'numbers', modes: { list: ['stream', 'routed'] }, 'users-per-gateway': 'number', rate: 'number', seconds: 'number' });
const gatewayCounts = String(args.gateways ?? (args.quick ? '1,2' : '1,2,4')).split(',').map(Number);
const usersPerGateway = num(args, 'users-per-gateway', 50);
const rate = num(args, 'rate', 300);
const seconds = num(args, 'seconds', args.quick ? 2 : 5);
const modes = String(args.modes ?? 'stream,routed').split(',');

const cluster = await startRedisCluster();
const redis = createRedisClusterClient({ nodes: [{ host: cluster.host, port: cluster.nodes[0].port }], password: cluster.password, commandTimeoutMs: 5000 });
await connectAndPing(redis, 5000);
const publisher = new RedisRoutedPublisher(redis, { historyMaxLen: 100 });
await publisher.loadFunction();
const signer = writeSignerKey();

async function masters() {
  return (await cluster.topology()).filter((n) => n.role === 'master');
}

/** Sum over the masters of INFO counters. */
async function redisCounters() {
  let bytes = 0;
  let cpu = 0;
  for (const m of await masters()) {
    const info = String(await cluster.command(m.port, ['INFO', 'all']));
    const field = (name) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
    bytes += field('total_net_output_bytes');
    cpu += field('used_cpu_user') + field('used_cpu_sys');
  }
  return { bytes, cpu };
}

async function entriesConsumed(gateway) {
  const text = await (await fetch(`http://${gateway.addresses.adminHttp}/metrics`)).text();
  const m = /^gateway_stream_entries_consumed_total\{[^}]*stream="client_events"[^}]*\}\s+(\S+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

async function run(mode, g) {
  const gateways = [];
  for (let i = 0; i < g; i += 1) {
    gateways.push(
      new GatewayChild({
        GATEWAY_REDIS_CLUSTER_NODES: cluster.seeds,
        GATEWAY_REDIS_PASSWORD: cluster.password,
        // A cluster of masters without replicas (push fan-out is measured here, not reservations).
        GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '0',
        GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: signer.path,
        GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
        GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
        GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
        GATEWAY_SHUTDOWN_TIMEOUT: '5s',
        GATEWAY_PUSH_FANOUT: mode,
      }),
    );
  }
  await Promise.all(gateways.map((gw) => gw.started(60_000)));
  // Each process holds `usersPerGateway` users, one stream each.
  const perGateway = gateways.map((_, i) => makeDevices(usersPerGateway, { label: `${mode}${g}g${i}` }));
  const devices = perGateway.flat();
  for (const d of devices) {
    await redis.command(['HSET', `gateway:session:${d.deviceSessionId}`, 'device_session_id', d.deviceSessionId, 'user_id', d.userId, 'status', 'active', 'client_public_key', d.publicKeyBase64]);
  }
  let delivered = 0;
  const clients = [];
  const calls = [];
  for (let i = 0; i < g; i += 1) {
    const c = await rawClients(gateways[i].addresses.grpc, 4);
    clients.push(...c);
    const opened = openStreams(c, perGateway[i].map((d) => signedSubscribe(d)), { onEvent: () => (delivered += 1) });
    calls.push(...opened.calls);
    await opened.ready;
  }
  await sleep(500);
  const before = { redis: await redisCounters(), entries: (await Promise.all(gateways.map(entriesConsumed))).reduce((a, b) => a + b, 0), cpu: gateways.reduce((s, gw) => s + cpuSeconds(gw.pid), 0) };
  const total = Math.round(rate * seconds);
  const payload = Buffer.alloc(64, 7);
  const started = performance.now();
  const pending = [];
  for (let n = 0; n < total; n += 1) {
    const user = devices[Math.floor(Math.random() * devices.length)].userId;
    pending.push(
      mode === 'routed'
        ? publisher.publish({ userId: user, eventType: 'bench.event', payload })
        : redis.command(['XADD', 'gateway:client-events', '*', 'user_id', user, 'event_type', 'bench.event', 'payload_base64', payload.toString('base64')]),
    );
    const due = started + ((n + 1) * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 2) await sleep(wait);
  }
  await Promise.all(pending);
  const deadline = performance.now() + 30_000;
  while (delivered < total && performance.now() < deadline) await sleep(20);
  await sleep(300);
  const after = { redis: await redisCounters(), entries: (await Promise.all(gateways.map(entriesConsumed))).reduce((a, b) => a + b, 0), cpu: gateways.reduce((s, gw) => s + cpuSeconds(gw.pid), 0) };
  closeAll(calls, clients);
  await Promise.all(gateways.map((gw) => gw.stop()));
  const result = {
    mode,
    gateways: g,
    streams: devices.length,
    published: total,
    delivered,
    redisBytesPerDelivery: (after.redis.bytes - before.redis.bytes) / delivered,
    entriesReadPerDelivery: (after.entries - before.entries) / delivered,
    redisCpuUsPerDelivery: ((after.redis.cpu - before.redis.cpu) * 1e6) / delivered,
    gatewayCpuUsPerDelivery: ((after.cpu - before.cpu) * 1e6) / delivered,
  };
  console.log(
    `${mode.padEnd(6)} G=${g}: ${delivered}/${total} delivered; per delivery: redis ${fmt(result.redisBytesPerDelivery)} B sent, ` +
      `${fmt(result.entriesReadPerDelivery, 2)} entries read, redis CPU ${fmt(result.redisCpuUsPerDelivery)} µs, gateway CPU ${fmt(result.gatewayCpuUsPerDelivery)} µs`,
  );
  return result;
}

const machineBefore = machineSnapshot();
const results = [];
try {
  for (const mode of modes) for (const g of gatewayCounts) results.push(await run(mode, g));
} finally {
  redis.destroy();
  await cluster.stop();
}
const path = writeResult('fleet', {
  machine: machineInfo(),
  noise: { before: machineBefore, after: machineSnapshot() },
  params: { gatewayCounts, usersPerGateway, rate, seconds, payloadBytes: 64, masters: 3 },
  results,
});
console.log(`wrote ${path}`);
process.exit(0);

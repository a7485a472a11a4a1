// Revocation benchmark: one open SubscribeEvents stream per device session; for each, a
// revoked record is written and its snapshot XADDed to the session-events stream (the auth
// service's order, SPEC §5.1), and the time from sending the XADD to the stream ending at
// the client with FAILED_PRECONDITION is recorded. Revocations run one after another, with
// `--background` extra idle streams open on the same gateway.
// Baseline, same run: a plain XREAD BLOCK reader of the session-events stream in this process
// (what any consumer pays to see the entry), timed from the same XADD.
//
//   node bench/revocation.mjs [--quick] [--revocations 200] [--background 1000]
import {
  GatewayChild,
  closeAll,
  connectRedis,
  fmt,
  gatewayEnv,
  machineInfo,
  machineSnapshot,
  makeDevices,
  num,
  openStreams,
  parseOptions,
  GATEWAY_ENV_OPTION,
  rawClients,
  signedSubscribe,
  sleep,
  startRedisServer,
  step,
  summarize,
  writeResult,
  writeSessions,
  writeSignerKey,
} from './lib.mjs';

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = { quick: 'boolean', revocations: 'number', background: 'number', connections: 'number', ...GATEWAY_ENV_OPTION };

export async function runRevocation(argv) {
  const args = parseOptions('revocation.mjs', OPTIONS, argv);
  const quick = args.quick;
  const params = {
    revocations: num(args, 'revocations', quick ? 50 : 200),
    background: num(args, 'background', quick ? 200 : 1000),
    connections: num(args, 'connections', 20),
  };
  console.log(`revocation benchmark ${JSON.stringify(params)}`);
  const before = machineSnapshot();
  const redis = await startRedisServer();
  const raw = await connectRedis(redis);
  const signer = writeSignerKey();
  const targets = makeDevices(params.revocations, { label: 'rev' });
  const background = makeDevices(params.background, { label: 'bg', perUser: 4 });
  await writeSessions(raw, [...targets, ...background]);
  const gateway = new GatewayChild(gatewayEnv(redis, signer));
  let clients;
  const allCalls = [];
  const latencies = new Float64Array(params.revocations);
  const baseline = new Float64Array(params.revocations);
  const statuses = {};
  try {
    const { grpc } = await gateway.started();
    clients = await rawClients(grpc, params.connections);
    if (background.length > 0) {
      const bg = openStreams(clients, background.map((d) => signedSubscribe(d)));
      allCalls.push(...bg.calls);
      await step(`opening ${fmt(background.length)} background streams`, () => bg.ready);
    }
    const ends = new Array(targets.length);
    const waiters = new Array(targets.length);
    const opened = openStreams(clients, targets.map((d) => signedSubscribe(d)), {
      onEnd: (i, error) => {
        if (ends[i] !== undefined) return;
        ends[i] = { at: performance.now(), code: error?.code ?? 'ended' };
        waiters[i]?.();
      },
    });
    allCalls.push(...opened.calls);
    await step(`opening ${fmt(targets.length)} streams to revoke`, () => opened.ready);
    // The baseline reader: XREAD BLOCK on its own connection, arrival time per device session.
    const reader = raw.duplicate();
    reader.on('error', () => undefined);
    await reader.connect();
    const arrivals = new Map();
    const arrivalWaiters = new Map();
    let reading = true;
    let lastId = '$';
    const readLoop = (async () => {
      while (reading) {
        const reply = await reader.xRead({ key: 'gateway:session-events', id: lastId }, { BLOCK: 1000 }).catch(() => null);
        const now = performance.now();
        for (const stream of reply ?? []) {
          for (const entry of stream.messages) {
            lastId = entry.id;
            const ds = entry.message.device_session_id;
            arrivals.set(ds, now);
            arrivalWaiters.get(ds)?.();
          }
        }
      }
    })();
    await step(`${params.revocations} revocations, one at a time`, async () => {
      for (let i = 0; i < targets.length; i += 1) {
        const ended = new Promise((r) => (waiters[i] = r));
        const seenByReader = new Promise((r) => arrivalWaiters.set(targets[i].deviceSessionId, r));
        const t0 = performance.now();
        const fields = {
          device_session_id: targets[i].deviceSessionId,
          user_id: targets[i].userId,
          status: 'revoked',
          client_public_key: targets[i].publicKeyBase64,
          revoked_at_ms: String(Date.now()),
        };
        await raw.hSet(`gateway:session:${targets[i].deviceSessionId}`, fields);
        const tx = performance.now();
        await raw.xAdd('gateway:session-events', '*', fields);
        await Promise.race([Promise.all([ended, seenByReader]), sleep(5000)]);
        baseline[i] = (arrivals.get(targets[i].deviceSessionId) ?? tx + 5000) - tx;
        const end = ends[i];
        if (end === undefined) {
          statuses.timeout = (statuses.timeout ?? 0) + 1;
          latencies[i] = 5000;
        } else {
          statuses[end.code] = (statuses[end.code] ?? 0) + 1;
          latencies[i] = end.at - tx;
        }
        void t0;
        await sleep(5);
      }
    });
    reading = false;
    reader.destroy();
    await readLoop;
  } finally {
    closeAll(allCalls, clients);
    await gateway.stop();
    await raw.quit().catch(() => undefined);
    await redis.stop();
  }
  const lat = summarize(latencies);
  const base = summarize(baseline);
  console.log(`  XADD → stream closed at client: p50 ${lat.p50} ms p99 ${lat.p99} ms max ${lat.max} ms; statuses ${JSON.stringify(statuses)} (9 = FAILED_PRECONDITION)`);
  console.log(`  baseline XADD → plain XREAD BLOCK reader: p50 ${base.p50} ms p99 ${base.p99} ms`);
  const out = {
    benchmark: 'revocation',
    quick,
    params,
    machine: machineInfo(),
    noise: { before, after: machineSnapshot() },
    results: {
      latencyMs: lat,
      endStatuses: statuses,
      baseline: { what: 'XADD → a plain XREAD BLOCK reader of the session-events stream in the bench process', latencyMs: base },
      ratios: { p50: Math.round((lat.p50 / base.p50) * 100) / 100, p99: Math.round((lat.p99 / base.p99) * 100) / 100 },
      targets: { p99: { target: '<= 50 ms', value: lat.p99, met: lat.p99 <= 50 && (statuses['9'] ?? 0) === params.revocations } },
    },
  };
  console.log(`  written ${writeResult('revocation', out)}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runRevocation(process.argv.slice(2));
  process.exit(0);
}

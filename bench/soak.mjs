// Soak: mixed load on the built gateway for a bounded time, gateway RSS sampled every second.
//  - `--streams` (default 1000) push streams open, 4 sessions per user, with churn: every
//    second `--churn` of them are cancelled and re-subscribed;
//  - client events at `--deliveries` per second;
//  - closed-loop ExecuteCommand at concurrency `--command-concurrency` (signed on the fly)
//    against the real echo downstream;
//  - one revocation (of a dedicated session with an open stream) every 5 s.
// Reported: RSS growth after warm-up (mean of the last 10 % of samples vs the mean of the first
// 10 % after warm-up; warm-up = the first 20 % of the run, at least 10 s).
//
//   node bench/soak.mjs [--quick] [--soak-seconds 600]
import { randomBytes } from 'node:crypto';
import {
  GatewayChild,
  closeAll,
  connectRedis,
  cpuSeconds,
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
  revokeSession,
  rssKiB,
  signedCommand,
  signedSubscribe,
  sleep,
  startHelper,
  startRedisServer,
  step,
  writeResult,
  writeSessions,
  writeSignerKey,
} from './lib.mjs';

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = { quick: 'boolean', 'soak-seconds': 'number', streams: 'number', churn: 'number', deliveries: 'number', 'command-concurrency': 'number', connections: 'number', ...GATEWAY_ENV_OPTION };

export async function runSoak(argv) {
  const args = parseOptions('soak.mjs', OPTIONS, argv);
  const quick = args.quick;
  const params = {
    soakSeconds: num(args, 'soak-seconds', quick ? 30 : 600),
    streams: num(args, 'streams', 1000),
    churnPerSec: num(args, 'churn', 20),
    deliveriesPerSec: num(args, 'deliveries', 2000),
    commandConcurrency: num(args, 'command-concurrency', 8),
    connections: num(args, 'connections', 20),
  };
  console.log(`soak benchmark ${JSON.stringify(params)}`);
  const before = machineSnapshot();
  const redis = await startRedisServer();
  const raw = await connectRedis(redis);
  const echo = await startHelper('echo-server.mjs');
  const signer = writeSignerKey();
  const devices = makeDevices(params.streams, { label: 'soak', perUser: 4 });
  const revokable = makeDevices(Math.ceil(params.soakSeconds / 5) + 2, { label: 'soakrev' });
  const commanders = makeDevices(8, { label: 'soakcmd' });
  await writeSessions(raw, [...devices, ...revokable, ...commanders]);
  const users = [...new Set(devices.map((d) => d.userId))];
  const gateway = new GatewayChild(gatewayEnv(redis, signer, { GATEWAY_DOWNSTREAM_ROUTES: `bench.=127.0.0.1:${echo.port}` }));
  const samples = [];
  const counters = { commandsOk: 0, commandErrors: 0, delivered: 0, published: 0, resubscribed: 0, revoked: 0, revokedClosed: 0, unexpectedEnds: 0 };
  let clients;
  const calls = new Array(devices.length);
  const revCalls = [];
  let stop = false;
  try {
    const { grpc } = await gateway.started();
    clients = await rawClients(grpc, params.connections);
    const cancelling = new Set();
    const subscribe = (i) => {
      const o = openStreams([clients[i % clients.length]], [signedSubscribe(devices[i])], {
        onEvent: () => (counters.delivered += 1),
        onEnd: () => {
          if (!cancelling.has(i) && !stop) counters.unexpectedEnds += 1;
        },
      });
      calls[i] = o.calls[0];
      return o.ready;
    };
    await step(`opening ${fmt(devices.length)} streams`, () => Promise.all(devices.map((_d, i) => subscribe(i))));

    const cpu0 = cpuSeconds(gateway.pid);
    const t0 = performance.now();
    const elapsed = () => (performance.now() - t0) / 1000;
    const payload = randomBytes(64);
    const payloadBase64 = payload.toString('base64');

    // Commands: closed loop, signed on the fly.
    const commandLoops = Array.from({ length: params.commandConcurrency }, (_v, w) =>
      (async () => {
        const client = clients[w % clients.length];
        while (!stop) {
          const request = signedCommand(commanders[w % commanders.length], 'bench.echo', payload);
          await new Promise((r) =>
            client.executeCommand(request, { deadline: Date.now() + 10_000 }, (error) => {
              if (error) counters.commandErrors += 1;
              else counters.commandsOk += 1;
              r();
            }),
          );
        }
      })(),
    );

    // Events.
    const eventLoop = (async () => {
      const eventsPerSec = params.deliveriesPerSec / 4;
      let u = 0;
      while (!stop) {
        const due = Math.floor(elapsed() * eventsPerSec);
        const batch = [];
        while (counters.published < due) {
          batch.push(raw.xAdd('gateway:client-events', '*', { user_id: users[u], event_type: 'bench.soak', payload_base64: payloadBase64 }, { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 10_000 } }));
          u = (u + 1) % users.length;
          counters.published += 1;
        }
        await Promise.all(batch);
        await sleep(10);
      }
    })();

    // Churn, revocations and RSS samples, once a second.
    let second = 0;
    while (elapsed() < params.soakSeconds) {
      await sleep(Math.max(0, (second + 1) * 1000 - (performance.now() - t0)));
      second += 1;
      samples.push({ t: Math.round(elapsed() * 10) / 10, rssKiB: rssKiB(gateway.pid) });
      for (let k = 0; k < params.churnPerSec; k += 1) {
        const i = Math.floor(Math.random() * devices.length);
        if (cancelling.has(i)) continue;
        cancelling.add(i);
        calls[i].cancel();
        void subscribe(i).then(() => {
          cancelling.delete(i);
          counters.resubscribed += 1;
        });
      }
      if (second % 5 === 0 && counters.revoked < revokable.length) {
        const d = revokable[counters.revoked];
        counters.revoked += 1;
        const o = openStreams([clients[0]], [signedSubscribe(d)], { onEnd: (_i, error) => error?.code === 9 && (counters.revokedClosed += 1) });
        revCalls.push(o.calls[0]);
        void o.ready.then(() => revokeSession(raw, d));
      }
      if (second % 30 === 0) console.log(`    ${second}s: RSS ${fmt(samples[samples.length - 1].rssKiB / 1024, 1)} MiB, ${fmt(counters.commandsOk)} commands, ${fmt(counters.delivered)} deliveries`);
    }
    // The last revocation may have been issued in the final second: give it time to land.
    const revokeDeadline = performance.now() + 5000;
    while (counters.revokedClosed < counters.revoked && performance.now() < revokeDeadline) await sleep(10);
    stop = true;
    await Promise.all([...commandLoops, eventLoop]);
    counters.gatewayCpuPercent = Math.round(((cpuSeconds(gateway.pid) - cpu0) / elapsed()) * 100);
  } finally {
    stop = true;
    closeAll([...calls, ...revCalls], clients);
    await gateway.stop();
    await echo.stop();
    await raw.quit().catch(() => undefined);
    await redis.stop();
  }
  const warmupSec = Math.max(10, params.soakSeconds * 0.2);
  const after = samples.filter((s) => s.t >= warmupSec);
  const window = Math.max(3, Math.floor(after.length * 0.1));
  const startMean = mean(after.slice(0, window).map((s) => s.rssKiB));
  const endMean = mean(after.slice(-window).map((s) => s.rssKiB));
  const growthPct = Math.round(((endMean - startMean) / startMean) * 10000) / 100;
  const results = {
    warmupSec,
    rssAfterWarmupMiB: Math.round((startMean / 1024) * 10) / 10,
    rssEndMiB: Math.round((endMean / 1024) * 10) / 10,
    rssMaxMiB: Math.round((Math.max(...samples.map((s) => s.rssKiB)) / 1024) * 10) / 10,
    growthPercent: growthPct,
    counters,
    samples,
    targets: { rssGrowth: { target: '< 10 % after warm-up', value: growthPct, met: growthPct < 10 } },
  };
  console.log(`  RSS after warm-up ${results.rssAfterWarmupMiB} MiB → end ${results.rssEndMiB} MiB: growth ${growthPct} % (target < 10 %); ${JSON.stringify(counters)}`);
  const out = { benchmark: 'soak', quick, params, machine: machineInfo(), noise: { before, after: machineSnapshot() }, results };
  console.log(`  written ${writeResult('soak', out)}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runSoak(process.argv.slice(2));
  process.exit(0);
}

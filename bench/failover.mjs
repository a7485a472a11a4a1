// Failover benchmark (issue 13): the built gateway on a master, a replica and three Sentinels
// (loopback, passwords), with a steady command load, open push streams and a publisher that
// appends a client event every few ms. Each round fails the master over (`SENTINEL FAILOVER`,
// or SIGKILL of the master with `--mode kill`) and measures, from the moment a Sentinel
// announces the new master (+switch-master, seen by this process):
//   - gap: until the first command that started after the announcement succeeded;
//   - delivery: of the events the new master acknowledged after the announcement, the share
//     every stream received exactly once and in order;
//   - ghosts: events the old master acknowledged that the new master does not hold (lost to
//     asynchronous replication), and the gateway's gateway_stream_history_diverged_total.
// Targets: gap <= 2 s, 100 % of post-announcement events delivered.
//
//   node bench/failover.mjs [--quick] [--rounds 3] [--mode failover|kill] [--streams 50] [--workers 4]
import { startSentinelTopology } from '@edge-gateway/test-utils';
import {
  GatewayChild,
  closeAll,
  connectRedis,
  eventIdOf,
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
  signedCommand,
  signedSubscribe,
  sleep,
  startHelper,
  step,
  writeResult,
  writeSessions,
  writeSignerKey,
} from './lib.mjs';

const STREAM = 'gateway:client-events';

/** A publisher/watcher connection to a loopback node (all nodes here are on 127.0.0.1). */
const connectTo = (port, password) => connectRedis({ port, password });

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = { quick: 'boolean', rounds: 'number', mode: ['failover', 'kill'], streams: 'number', workers: 'number', 'publish-every-ms': 'number', ...GATEWAY_ENV_OPTION };

export async function runFailover(argv) {
  const args = parseOptions('failover.mjs', OPTIONS, argv);
  const quick = args.quick;
  const params = {
    rounds: num(args, 'rounds', quick ? 1 : 3),
    mode: typeof args.mode === 'string' ? args.mode : 'failover',
    streams: num(args, 'streams', quick ? 20 : 50),
    workers: num(args, 'workers', 4),
    publishEveryMs: num(args, 'publish-every-ms', 5),
  };
  console.log(`failover benchmark ${JSON.stringify(params)}`);
  const before = machineSnapshot();
  const topo = await startSentinelTopology({ sentinelPassword: 'bench-sentinel' });
  const echo = await startHelper('echo-server.mjs');
  const signer = writeSignerKey();
  const devices = makeDevices(params.streams, { label: 'fo', perUser: params.streams });
  const userId = devices[0].userId;
  const rounds = [];
  let gateway;
  let clients;
  const calls = [];
  try {
    {
      const { port } = await topo.master();
      const setup = await connectTo(port, topo.password);
      await writeSessions(setup, devices);
      await setup.quit();
    }
    gateway = new GatewayChild(
      gatewayEnv({ port: 0, password: topo.password }, signer, {
        GATEWAY_REDIS_MASTER_ADDR: undefined,
        GATEWAY_REDIS_SENTINEL_ADDRS: topo.sentinelAddrs,
        GATEWAY_REDIS_SENTINEL_MASTER_NAME: topo.masterName,
        GATEWAY_REDIS_SENTINEL_PASSWORD: topo.sentinelPassword,
        GATEWAY_REDIS_COMMAND_TIMEOUT: '500ms',
        GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
        GATEWAY_DOWNSTREAM_ROUTES: `bench.=127.0.0.1:${echo.port}`,
      }),
    );
    const { grpc, adminHttp } = await gateway.started();
    clients = await rawClients(grpc, 4);
    // Per stream: every client event id in arrival order.
    const received = devices.map(() => []);
    const opened = openStreams(clients, devices.map((d) => signedSubscribe(d)), {
      onEvent: (buf, i) => {
        const id = eventIdOf(buf);
        if (id !== '') received[i].push(id);
      },
    });
    calls.push(...opened.calls);
    await step(`opening ${params.streams} streams`, () => opened.ready);

    // The announcement as the bench sees it: +switch-master on one Sentinel.
    const sentinel = topo.sentinels[0];
    const announcements = [];
    const watcher = await connectTo(sentinel.port, topo.sentinelPassword);
    await watcher.subscribe('+switch-master', (message) => {
      const [, , , host, port] = message.split(' ');
      announcements.push({ at: Date.now(), perfAt: performance.now(), host, port: Number(port) });
    });

    // Command load: `workers` loops of ExecuteCommand, outcome and timing of each.
    const outcomes = [];
    let loading = true;
    const loops = Array.from({ length: params.workers }, (_, w) =>
      (async () => {
        for (let n = 0; loading && n < 1_000_000; n += 1) {
          const device = devices[(w + n * params.workers) % devices.length];
          const startedAt = Date.now();
          const code = await new Promise((resolve) =>
            clients[w % clients.length].executeCommand(signedCommand(device, 'bench.ping', Buffer.from('x')), { deadline: Date.now() + 5000 }, (err) =>
              resolve(err ? err.code : 0),
            ),
          );
          outcomes.push({ startedAt, endedAt: Date.now(), code });
          if (code !== 0) await sleep(10);
        }
      })(),
    );

    // Publisher: follows the announcements; every acknowledged id with its ack time and node.
    const published = [];
    let publishing = true;
    let target = await topo.master();
    let publisher = await connectTo(target.port, topo.password);
    let seenAnnouncements = 0;
    const publishLoop = (async () => {
      for (let n = 0; publishing && n < 10_000_000; n += 1) {
        if (announcements.length > seenAnnouncements) {
          seenAnnouncements = announcements.length;
          const next = announcements[announcements.length - 1];
          target = { host: next.host, port: next.port };
          await publisher.disconnect().catch(() => undefined);
          publisher = await connectTo(target.port, topo.password).catch(() => publisher);
        }
        try {
          const id = await publisher.xAdd(STREAM, '*', { user_id: userId, event_type: 'bench.failover', payload_base64: '' });
          published.push({ id, at: Date.now(), port: target.port });
        } catch {
          await sleep(50);
          try {
            await publisher.disconnect().catch(() => undefined);
            target = await topo.master();
            publisher = await connectTo(target.port, topo.password);
          } catch {
            // next try
          }
        }
        await sleep(params.publishEveryMs);
      }
    })();

    for (let round = 0; round < params.rounds; round += 1) {
      await sleep(2000);
      const old = await topo.masterNode();
      const announcedBefore = announcements.length;
      const publishedBefore = published.length;
      const learnedWait = gateway.waitFor('redis master changed', 60_000).catch(() => undefined);
      const failStart = Date.now();
      if (params.mode === 'kill') await old.kill();
      else await topo.failover();
      const promoted = await topo.waitForNewMaster(old.port, 30_000);
      while (announcements.length === announcedBefore) await sleep(10);
      const announcedAt = announcements[announcements.length - 1].at;
      const announcedPerf = announcements[announcements.length - 1].perfAt;
      // When the gateway logged the switch (its own +switch-master or poll), relative to ours.
      const learned = await learnedWait;
      gateway.seen.delete('redis master changed');
      // Let the load and the publisher run on the new master for a while.
      await sleep(4000);
      const firstOk = outcomes.find((o) => o.code === 0 && o.startedAt >= announcedAt);
      const lastOkBefore = [...outcomes].reverse().find((o) => o.code === 0 && o.endedAt <= announcedAt);
      const after = published.filter((p) => p.at > announcedAt && p.port === promoted.port);
      // Delivery: each stream got every post-announcement event exactly once, in order.
      await sleep(1000);
      let delivered = 0;
      let duplicates = 0;
      let outOfOrder = 0;
      for (const ids of received) {
        const set = new Set(ids);
        if (set.size !== ids.length) duplicates += ids.length - set.size;
        const positions = after.map((p) => ids.indexOf(p.id));
        delivered += positions.filter((p) => p >= 0).length;
        for (let i = 1; i < positions.length; i += 1) if (positions[i] >= 0 && positions[i] < positions[i - 1]) outOfOrder += 1;
      }
      // Ghosts: acknowledged during this round by the old master, absent on the new one.
      const fresh = await connectTo(promoted.port, topo.password);
      const oldAcks = published.slice(publishedBefore).filter((p) => p.port === old.port);
      let ghosts = 0;
      for (const p of oldAcks) if ((await fresh.xRange(STREAM, p.id, p.id)).length === 0) ghosts += 1;
      await fresh.quit();
      const diverged = await fetch(`http://${adminHttp}/metrics`)
        .then((r) => r.text())
        .then((t) => Number(/^gateway_stream_history_diverged_total\{stream="client_events"[^}]*\} (\S+)$/m.exec(t)?.[1] ?? 0));
      const r = {
        round,
        mode: params.mode,
        failoverMs: announcedAt - failStart,
        gatewayLearnedMs: learned === undefined ? null : Math.round(learned.at - announcedPerf),
        gatewayLearnedFrom: learned?.line?.source ?? null,
        // By the gateway's own log timestamp (same clock): excludes the log pipe's delay.
        gatewayLoggedMs: learned?.line?.timestamp === undefined ? null : Date.parse(learned.line.timestamp) - announcedAt,
        gapMs: firstOk === undefined ? null : firstOk.endedAt - announcedAt,
        outageMs: firstOk === undefined || lastOkBefore === undefined ? null : firstOk.endedAt - lastOkBefore.endedAt,
        commandsFailed: outcomes.filter((o) => o.code !== 0 && o.startedAt >= failStart - 1000).length,
        failedCodes: [...new Set(outcomes.filter((o) => o.code !== 0).map((o) => o.code))],
        eventsAfter: after.length,
        deliveredShare: after.length === 0 ? null : delivered / (after.length * received.length),
        duplicates,
        outOfOrder,
        oldMasterAcks: oldAcks.length,
        ghosts,
        divergedTotal: diverged,
      };
      rounds.push(r);
      console.log(
        `  round ${round}: announced ${fmt(r.failoverMs)} ms after the trigger (gateway switched ${r.gatewayLoggedMs} ms after that by its log clock, line seen after ${r.gatewayLearnedMs} ms, on ${r.gatewayLearnedFrom}); first success ${r.gapMs} ms after the announcement (no success for ${r.outageMs} ms); ` +
          `${r.commandsFailed} commands failed (codes ${r.failedCodes.join(',')}); ${r.eventsAfter} events after the announcement, delivered ${((r.deliveredShare ?? 0) * 100).toFixed(1)} % ` +
          `(${duplicates} duplicates, ${outOfOrder} out of order); ghosts ${ghosts} of ${oldAcks.length} old-master acks; diverged_total ${diverged}`,
      );
      if (params.mode === 'kill') {
        await old.restart();
        await topo.waitForReplicaLink(old, 60_000);
      } else {
        for (const replica of await topo.replicaNodes()) await topo.waitForReplicaLink(replica, 60_000);
      }
    }
    loading = false;
    publishing = false;
    await Promise.all(loops);
    await publishLoop;
    await publisher.disconnect().catch(() => undefined);
    await watcher.disconnect().catch(() => undefined);
  } finally {
    closeAll(calls, clients ?? []);
    await gateway?.stop();
    await echo.stop();
    await topo.stop();
  }
  const worstGap = Math.max(...rounds.map((r) => r.gapMs ?? Infinity));
  const worstShare = Math.min(...rounds.map((r) => r.deliveredShare ?? 0));
  const out = {
    benchmark: 'failover',
    quick,
    params,
    machine: machineInfo(),
    noise: { before, after: machineSnapshot() },
    results: {
      rounds,
      targets: {
        gap: { target: '<= 2000 ms from the announcement to the first successful command', value: worstGap, met: worstGap <= 2000 },
        delivery: { target: '100 % of post-announcement events, once, in order', value: worstShare, met: worstShare === 1 && rounds.every((r) => r.duplicates === 0 && r.outOfOrder === 0) },
      },
    },
  };
  console.log(`  written ${writeResult(`failover-${params.mode}`, out)}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runFailover(process.argv.slice(2));
  process.exit(0);
}

// WebSocket push next to gRPC push, same run, same gateway build, same load.
//
// For each stream count (default 1k and 10k) and each transport, a fresh gateway (with
// GATEWAY_WEBSOCKET_ADDR set) is started, then:
//  - subscribe storm: every stream opened at once with a pre-signed subscribe request; gRPC
//    over ~100 HTTP/2 connections (as bench/push.mjs), WebSocket with one connection per stream
//    (as browsers do), connects --connect-concurrency at a time; time until every stream got
//    its bootstrap event;
//  - fan-out at rising rates: client events XADDed for one user each (every stream of the user
//    gets it); delivered/s, latency from the entry id's time to receipt (p50/p99), gateway CPU.
// Bench clients never verify signatures; only the event id is read from the wire bytes.
//
//   node bench/websocket-push.mjs [--quick] [--streams 1000,10000] [--rates 5000,20000]
//        [--step-seconds 5] [--connections 100] [--connect-concurrency 500] [--devices-per-user 4]
//
// A figure is only worth reporting from a quiet machine: the load generator, the gateway and
// redis-server share its cores (see machine.noise in the result file).
import WebSocket from 'ws';
import { encodeFrame, FrameTypes, FRAME_HEADER_BYTES, WEBSOCKET_PATH, WEBSOCKET_SUBPROTOCOL } from '@edge-gateway/protocol';
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
  signedSubscribe,
  sleep,
  startRedisServer,
  step,
  writeResult,
  writeSessions,
  writeSignerKey,
} from './lib.mjs';
import { deliveryCounter, fanoutSteps } from './push.mjs';

/**
 * Opens one WebSocket per subscribe request (`concurrency` handshakes in flight), each sending
 * one subscribe frame. `onEvent(body)` gets every live event's protobuf body. Resolves the
 * storm time once every stream received its bootstrap event.
 */
function openWebSocketStreams(url, requests, { onEvent, onEnd, concurrency, timeoutMs }) {
  const sockets = [];
  let bootstrapped = 0;
  let failed = 0;
  let firstError;
  const t0 = performance.now();
  const ready = new Promise((resolveAll, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${bootstrapped}/${requests.length} streams bootstrapped (${failed} failed${firstError ? `: ${firstError}` : ''}) after ${timeoutMs} ms`)), timeoutMs);
    let next = 0;
    const openOne = () => {
      if (next >= requests.length) return;
      const i = next;
      next += 1;
      const ws = new WebSocket(url, WEBSOCKET_SUBPROTOCOL, { perMessageDeflate: false });
      sockets.push(ws);
      let boot = false;
      let opened = false;
      ws.on('open', () => {
        opened = true;
        ws.send(encodeFrame(FrameTypes.subscribe, 1, requests[i]));
        openOne();
      });
      ws.on('message', (data) => {
        if (data[0] === FrameTypes.status) {
          if (!boot) {
            failed += 1;
            firstError ??= `status ${data[FRAME_HEADER_BYTES]} ${data.toString('utf8', FRAME_HEADER_BYTES + 1)}`;
          }
          onEnd(i);
          return;
        }
        if (!boot) {
          boot = true;
          bootstrapped += 1;
          if (bootstrapped === requests.length) {
            clearTimeout(timer);
            resolveAll(performance.now() - t0);
          }
          return;
        }
        onEvent(data.subarray(FRAME_HEADER_BYTES), i);
      });
      ws.on('error', (error) => {
        failed += 1;
        firstError ??= error.message;
        if (!opened) openOne();
      });
    };
    for (let c = 0; c < Math.min(concurrency, requests.length); c += 1) openOne();
  });
  return {
    ready,
    get bootstrapped() {
      return bootstrapped;
    },
    close: () => {
      for (const ws of sockets) ws.terminate();
    },
  };
}

async function runTransport(transport, redis, raw, signer, level, params) {
  const users = [...new Set(level.map((d) => d.userId))];
  const gateway = new GatewayChild(gatewayEnv(redis, signer, { GATEWAY_WEBSOCKET_ADDR: '127.0.0.1:0' }));
  const out = { transport, streams: level.length, users: users.length };
  let grpcClients;
  let grpcStreams;
  let wsStreams;
  try {
    const addresses = await gateway.started();
    const counter = deliveryCounter();
    const { onEvent, onEnd } = counter;
    const requests = level.map((d) => signedSubscribe(d));
    const cpu0 = cpuSeconds(gateway.pid);
    let stormMs;
    let stormError;
    try {
      if (transport === 'grpc') {
        grpcClients = await rawClients(addresses.grpc, params.connections);
        grpcStreams = openStreams(grpcClients, requests, { onEvent, onEnd, timeoutMs: params.stormTimeoutMs });
        stormMs = await grpcStreams.ready;
      } else {
        wsStreams = openWebSocketStreams(`ws://${addresses.websocket}${WEBSOCKET_PATH}`, requests, {
          onEvent,
          onEnd,
          concurrency: params.connectConcurrency,
          timeoutMs: params.stormTimeoutMs,
        });
        stormMs = await wsStreams.ready;
      }
    } catch (error) {
      stormError = error.message;
    }
    out.subscribeStorm = {
      allBootstrappedMs: stormMs === undefined ? null : Math.round(stormMs),
      bootstrapped: transport === 'grpc' ? grpcStreams?.bootstrapped : wsStreams?.bootstrapped,
      gatewayCpuSeconds: Math.round((cpuSeconds(gateway.pid) - cpu0) * 100) / 100,
      ...(stormError ? { error: stormError } : {}),
    };
    console.log(`    ${transport} ${fmt(level.length)} streams: storm ${stormMs === undefined ? `FAILED (${stormError})` : `${Math.round(stormMs)} ms`}`);
    if (stormMs === undefined) return out;
    await sleep(1000);

    out.fanout = await fanoutSteps(gateway, raw, users, params, counter, `${transport} `);
    return out;
  } finally {
    closeAll(grpcStreams?.calls, grpcClients);
    wsStreams?.close();
    await gateway.stop();
  }
}

/** The command-line options (strict: anything else exits 2 with the usage line). */
export const OPTIONS = { quick: 'boolean', streams: 'numbers', rates: 'numbers', 'step-seconds': 'number', connections: 'number', 'connect-concurrency': 'number', 'devices-per-user': 'number', payload: 'number', 'storm-timeout-ms': 'number', ...GATEWAY_ENV_OPTION };

export async function runWebSocketPush(argv) {
  const args = parseOptions('websocket-push.mjs', OPTIONS, argv);
  const quick = args.quick;
  const list = (name, fallback) => (typeof args[name] === 'string' ? args[name].split(',').map(Number) : fallback);
  const params = {
    quick,
    streams: list('streams', quick ? [1000] : [1000, 10000]),
    rates: list('rates', quick ? [5000] : [5000, 20000]),
    stepSeconds: num(args, 'step-seconds', quick ? 2 : 5),
    connections: num(args, 'connections', 100),
    connectConcurrency: num(args, 'connect-concurrency', 500),
    devicesPerUser: num(args, 'devices-per-user', 4),
    stormTimeoutMs: num(args, 'storm-timeout-ms', 60_000),
    payloadBytes: num(args, 'payload', 64),
  };
  params.payloadBase64 = Buffer.alloc(params.payloadBytes, 7).toString('base64');
  console.log(`websocket vs grpc push benchmark ${JSON.stringify({ ...params, payloadBase64: undefined })}`);
  const before = machineSnapshot();
  const redis = await startRedisServer();
  const raw = await connectRedis(redis);
  const signer = writeSignerKey();
  const maxStreams = Math.max(...params.streams);
  const devices = await step(`generating ${fmt(maxStreams)} device keys`, () => makeDevices(maxStreams, { perUser: params.devicesPerUser, label: 'wspush' }));
  await step('writing session records', () => writeSessions(raw, devices));
  const levels = [];
  try {
    for (const streams of params.streams) {
      for (const transport of ['grpc', 'websocket']) {
        levels.push(await step(`level ${fmt(streams)} streams, ${transport}`, () => runTransport(transport, redis, raw, signer, devices.slice(0, streams), params)));
      }
    }
  } finally {
    await raw.quit().catch(() => undefined);
    await redis.stop();
  }
  const out = {
    benchmark: 'websocket-push',
    quick,
    params: { ...params, payloadBase64: undefined },
    machine: machineInfo(),
    noise: { before, after: machineSnapshot() },
    processes: 'load generator and bench clients (this process), gateway child, redis-server; loopback',
    results: { levels },
  };
  console.log(`  written ${writeResult('websocket-push', out)}`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runWebSocketPush(process.argv.slice(2));
  process.exit(0);
}

// One load-generator process of bench/device-scale.mjs (forked with an IPC channel; several
// of them split the devices). Each device holds its own TCP connection (TLS when asked, with
// the session ticket of its previous connection reused on reconnect) and one push stream:
//  - WebSocket: a raw client over net/tls (HTTP upgrade written by hand, frames parsed by
//    hand, pings answered), one subscribe frame per connection;
//  - gRPC: node:http2 (one session per device), one SubscribeEvents request, gRPC
//    length-prefixed messages parsed by hand.
// Requests are signed before the connections are opened (a reconnect signs its one request
// when it happens: `resume_after_event_id` is part of the signed bytes). Only the event id is
// read from each event; one event in `sampleEvery` is decoded and its signature verified, and
// id-less events after the bootstrap are decoded to spot `gateway.resume_incomplete`.
// Reports its own CPU with every stats answer, so a saturated generator shows.
// Not a command-line script: bench/device-scale.mjs starts it.
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { connect as h2Connect, constants as h2 } from 'node:http2';
import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { eventBytes, subscribeRequestBytes } from '@edge-gateway/core';
import { GatewayEvent, SubscribeEventsRequest } from '@edge-gateway/adapters-grpc/generated';
import { MsHistogram } from './lib.mjs';

const WS_SUBSCRIBE = 0x02;
const WS_EVENT = 0x82;
const WS_STATUS = 0x83;
const WS_STATUS_TRAILERS = 0x84;

let cfg; // init message
let devices = []; // { id, user, key }
let signerKey;
let requestCounter = 0;

// Per device (local index).
let conns; // current connection or undefined
let booted; // Uint8Array: bootstrap seen on the current connection
let lastMs; // Float64Array: last event id received (ms part; 0 = none)
let lastSeq; // Float64Array
let distinct; // Uint32Array: distinct events received (in id order; replays of seen ids not counted)
let reconnectStartWall; // Float64Array: wall time the current (re)connection started; 0 = none
let ticket; // TLS session of the last connection, per device
let reconnectsOf; // Uint16Array: reconnects per device since the last reset
let distinctTotal = 0;
let reconnectsInFlight = 0;
// BENCH_DS_TRACK=1: every id each device received, for the lost samples.
let idsOf = process.env.BENCH_DS_TRACK === '1' ? [] : undefined;

const stats = { reset() {
  this.live = new MsHistogram();
  this.replayed = 0;
  this.reconnect = new MsHistogram();
  this.reconnects = 0;
  this.reconnectFailures = 0;
  this.resumeIncomplete = 0;
  this.ended = 0;
  this.endReasons = {};
  this.verified = 0;
  this.verifyFailed = 0;
  this.received = 0;
  this.duplicates = 0;
  this.outOfOrder = 0;
  this.cpu0 = process.cpuUsage();
  this.t0 = performance.now();
} };
stats.reset();

const sampleEvery = () => cfg.sampleEvery;
let sampleCounter = 0;

function signedSubscribe(device, resumeAfterEventId) {
  requestCounter += 1;
  const fields = { deviceSessionId: device.id, requestId: `ds-${process.pid}-${requestCounter}-${Date.now()}`, timestampMs: Date.now(), resumeAfterEventId };
  const signature = sign(null, subscribeRequestBytes(fields), device.key);
  return Buffer.from(SubscribeEventsRequest.encode({ ...fields, signature }).finish());
}

function resumeIdOf(i) {
  return lastMs[i] === 0 ? '' : `${lastMs[i]}-${lastSeq[i]}`;
}

/** Handles one GatewayEvent body of device `i`'s stream. Returns false when the body is not an event. */
function onEvent(i, body) {
  if (booted[i] === 0) {
    booted[i] = 1;
    const started = reconnectStartWall[i];
    const conn = conns[i];
    if (conn?.onBoot) conn.onBoot(Date.now() - started);
    return;
  }
  // The event id: field 1 (tag 0x0a) first when set.
  if (body[0] !== 0x0a) {
    // An id-less event after the bootstrap: a gateway event.
    try {
      const event = GatewayEvent.decode(body);
      if (event.eventType === 'gateway.resume_incomplete') stats.resumeIncomplete += 1;
    } catch {
      // not an event
    }
    return;
  }
  let len = 0;
  let shift = 0;
  let p = 1;
  for (;;) {
    const b = body[p++];
    len |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  // `<ms>-<seq>` parsed without a string.
  let ms = 0;
  let seq = 0;
  let k = p;
  const end = p + len;
  for (; k < end && body[k] !== 0x2d; k += 1) ms = ms * 10 + (body[k] - 48);
  for (k += 1; k < end; k += 1) seq = seq * 10 + (body[k] - 48);
  stats.received += 1;
  if (idsOf !== undefined) (idsOf[i] ??= []).push(`${ms}-${seq}@${Date.now()}${conns[i]?.resumedFrom !== undefined ? `/r${conns[i].resumedFrom}` : ''}`);
  if (ms > lastMs[i] || (ms === lastMs[i] && seq > lastSeq[i])) {
    lastMs[i] = ms;
    lastSeq[i] = seq;
    distinct[i] += 1;
    distinctTotal += 1;
  } else if (ms === lastMs[i] && seq === lastSeq[i]) {
    stats.duplicates += 1;
  } else {
    // Older than an event this device already got: out of order (a gap the client would skip).
    stats.outOfOrder += 1;
  }
  // Events published before this connection started are replays of missed ones: not live latency.
  if (ms < reconnectStartWall[i] - 1) stats.replayed += 1;
  else stats.live.record(Date.now() - ms);
  sampleCounter += 1;
  if (sampleCounter >= sampleEvery()) {
    sampleCounter = 0;
    try {
      const event = GatewayEvent.decode(body);
      const ok = event.signature.length === 64 && verify(null, eventBytes(event), signerKey, event.signature);
      if (ok) stats.verified += 1;
      else stats.verifyFailed += 1;
    } catch {
      stats.verifyFailed += 1;
    }
  }
}

function onStreamEnd(i, reason) {
  const conn = conns[i];
  if (conn === undefined || conn.over) return;
  conn.over = true;
  if (conn.onFail && booted[i] === 0) conn.onFail(reason);
  if (!conn.closing) {
    stats.ended += 1;
    stats.endReasons[reason] = (stats.endReasons[reason] ?? 0) + 1;
  }
}

function tlsOptions(i) {
  return {
    host: cfg.host,
    port: cfg.port,
    ca: cfg.ca,
    servername: 'localhost',
    ...(ticket[i] ? { session: ticket[i] } : {}),
  };
}

function keepTicket(i, socket) {
  socket.on('session', (session) => {
    ticket[i] = session;
  });
}

// ---------------------------------------------------------------------------------------
// WebSocket, raw

const ZERO_MASK = Buffer.alloc(4);
function wsFrame(opcode, payload) {
  // Client frames are masked; a zero mask leaves the payload as it is (the server unmasks).
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  return Buffer.concat([head, ZERO_MASK, payload]);
}

function openWebSocket(i, request) {
  const socket = cfg.tls ? tlsConnect({ ...tlsOptions(i) }) : netConnect({ host: cfg.host, port: cfg.port });
  if (cfg.tls) keepTicket(i, socket);
  socket.setNoDelay(true);
  const conn = { socket, over: false, closing: false, close: () => socket.destroy() };
  socket.once(cfg.tls ? 'secureConnect' : 'connect', () => {
    if (cfg.tls) conn.tlsReused = socket.isSessionReused();
    socket.write(
      `GET /v1/ws HTTP/1.1\r\nHost: ${cfg.host}:${cfg.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: edgegateway.v1\r\n\r\n`,
    );
  });
  let upgraded = false;
  let pending = null;
  socket.on('data', (chunk) => {
    let buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    pending = null;
    if (!upgraded) {
      const endOfHead = buf.indexOf('\r\n\r\n');
      if (endOfHead < 0) {
        pending = buf;
        return;
      }
      if (!buf.toString('latin1', 0, 12).startsWith('HTTP/1.1 101')) {
        onStreamEnd(i, `upgrade ${buf.toString('latin1', 9, 12)}`);
        socket.destroy();
        return;
      }
      upgraded = true;
      // Frame type subscribe, call id 1, the request.
      socket.write(wsFrame(0x2, Buffer.concat([Buffer.from([WS_SUBSCRIBE, 0, 0, 0, 1]), request])));
      buf = buf.subarray(endOfHead + 4);
    }
    let p = 0;
    while (buf.length - p >= 2) {
      const b0 = buf[p];
      let len = buf[p + 1] & 0x7f;
      let h = 2;
      if (len === 126) {
        if (buf.length - p < 4) break;
        len = buf.readUInt16BE(p + 2);
        h = 4;
      } else if (len === 127) {
        if (buf.length - p < 10) break;
        len = Number(buf.readBigUInt64BE(p + 2));
        h = 10;
      }
      if (buf.length - p < h + len) break;
      const payload = buf.subarray(p + h, p + h + len);
      p += h + len;
      const opcode = b0 & 0x0f;
      if (opcode === 0x2) {
        const type = payload[0];
        if (type === WS_EVENT) onEvent(i, payload.subarray(5));
        else if (type === WS_STATUS || type === WS_STATUS_TRAILERS) onStreamEnd(i, `status ${payload[5]}`);
      } else if (opcode === 0x9) {
        socket.write(wsFrame(0xa, payload));
      } else if (opcode === 0x8) {
        onStreamEnd(i, `close ${payload.length >= 2 ? payload.readUInt16BE(0) : ''}`);
        socket.destroy();
      }
    }
    if (p < buf.length) pending = Buffer.from(buf.subarray(p));
  });
  socket.on('error', (error) => {
    conn.error = error.code ?? error.message;
  });
  socket.on('close', () => {
    onStreamEnd(i, conn.error ? `socket ${conn.error}` : 'socket closed');
    conn.closed?.();
  });
  return conn;
}

// ---------------------------------------------------------------------------------------
// gRPC over node:http2, raw

function grpcFrame(message) {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

function openGrpc(i, request) {
  const authority = `${cfg.tls ? 'https' : 'http'}://localhost:${cfg.port}`;
  let tlsSocket;
  const session = h2Connect(authority, {
    createConnection: () => {
      if (!cfg.tls) return netConnect({ host: cfg.host, port: cfg.port });
      tlsSocket = tlsConnect({ ...tlsOptions(i), ALPNProtocols: ['h2'] });
      keepTicket(i, tlsSocket);
      return tlsSocket;
    },
  });
  const conn = { session, over: false, closing: false, close: () => session.destroy() };
  session.on('error', (error) => {
    conn.error = error.code ?? error.message;
  });
  session.on('close', () => {
    onStreamEnd(i, conn.error ? `session ${conn.error}` : 'session closed');
    conn.closed?.();
  });
  const stream = session.request({
    [h2.HTTP2_HEADER_METHOD]: 'POST',
    [h2.HTTP2_HEADER_PATH]: '/edgegateway.v1.EdgeGateway/SubscribeEvents',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  if (cfg.tls) session.once('connect', () => (conn.tlsReused = tlsSocket?.isSessionReused()));
  stream.end(grpcFrame(request));
  let pending = null;
  stream.on('data', (chunk) => {
    const buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    pending = null;
    let p = 0;
    while (buf.length - p >= 5) {
      const len = buf.readUInt32BE(p + 1);
      if (buf.length - p < 5 + len) break;
      onEvent(i, buf.subarray(p + 5, p + 5 + len));
      p += 5 + len;
    }
    if (p < buf.length) pending = Buffer.from(buf.subarray(p));
  });
  let status = '';
  stream.on('trailers', (trailers) => {
    status = `grpc-status ${trailers['grpc-status']}`;
  });
  stream.on('response', (headers) => {
    if (headers['grpc-status'] !== undefined) status = `grpc-status ${headers['grpc-status']} ${headers['grpc-message'] ?? ''}`;
  });
  stream.on('error', () => undefined);
  stream.on('close', () => {
    onStreamEnd(i, status || `stream closed ${stream.rstCode}`);
    session.close();
  });
  return conn;
}

// ---------------------------------------------------------------------------------------

/**
 * Opens device `i`'s connection and stream with `request`; resolves `{ ms, ok, reason }` when its
 * bootstrap arrives or the stream fails first.
 */
function open(i, request) {
  booted[i] = 0;
  reconnectStartWall[i] = Date.now();
  return new Promise((resolve) => {
    const conn = cfg.transport === 'ws' ? openWebSocket(i, request) : openGrpc(i, request);
    conns[i] = conn;
    conn.onBoot = (ms) => {
      conn.onBoot = undefined;
      conn.onFail = undefined;
      resolve({ ok: true, ms, tlsReused: conn.tlsReused === true });
    };
    conn.onFail = (reason) => {
      conn.onBoot = undefined;
      conn.onFail = undefined;
      resolve({ ok: false, reason });
    };
  });
}

/** Opens every device (`concurrency` in flight; 0 = all at once), each with a request signed beforehand. */
async function connectAll(concurrency, withResume) {
  const requests = devices.map((d, i) => signedSubscribe(d, withResume ? resumeIdOf(i) : ''));
  const startedAt = Date.now();
  const boot = new MsHistogram();
  let next = 0;
  let bootstrapped = 0;
  let failed = 0;
  let tlsReused = 0;
  let firstError;
  let lastBootAt = startedAt;
  const worker = async () => {
    while (next < devices.length) {
      const i = next;
      next += 1;
      const r = await open(i, requests[i]);
      if (r.ok) {
        bootstrapped += 1;
        lastBootAt = Date.now();
        boot.record(r.ms);
        if (r.tlsReused) tlsReused += 1;
      } else {
        failed += 1;
        firstError ??= r.reason;
      }
    }
  };
  const lanes = concurrency > 0 ? Math.min(concurrency, devices.length) : devices.length;
  await Promise.all(Array.from({ length: lanes }, worker));
  return { startedAt, lastBootAt, bootstrapped, failed, firstError, tlsReused, bootMs: boot.summary() };
}

/** Closes every connection from this side; resolves once every socket is closed. */
async function disconnectAll() {
  await Promise.all(
    conns.map((conn) => {
      if (conn === undefined || conn.over) return undefined;
      conn.closing = true;
      return new Promise((resolve) => {
        conn.closed = resolve;
        conn.close();
      });
    }),
  );
}

// Churn: `perSec` devices a second close their connection and open a new one resuming after
// the last event id they got.
let churnTimer;
function startChurn(perSec) {
  if (perSec <= 0) return;
  const t0 = performance.now();
  let done = 0;
  churnTimer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * perSec);
    while (done < due) {
      done += 1;
      // A random device whose stream is up (bounded tries).
      let i = -1;
      for (let t = 0; t < 20; t += 1) {
        const c = Math.floor(Math.random() * devices.length);
        if (conns[c] !== undefined && !conns[c].over && booted[c] === 1) {
          i = c;
          break;
        }
      }
      if (i < 0) continue;
      const old = conns[i];
      old.closing = true;
      stats.reconnects += 1;
      reconnectsOf[i] += 1;
      const t = performance.now();
      reconnectsInFlight += 1;
      new Promise((resolve) => {
        old.closed = resolve;
        old.close();
      })
        .then(() => {
          const from = resumeIdOf(i);
          const p = open(i, signedSubscribe(devices[i], from));
          conns[i].resumedFrom = `${from}@${Date.now()}`;
          return p;
        })
        .then((r) => {
          reconnectsInFlight -= 1;
          if (r.ok) stats.reconnect.record(performance.now() - t);
          else stats.reconnectFailures += 1;
        });
    }
  }, 10);
}

function snapshot(full) {
  const cpu = process.cpuUsage(stats.cpu0);
  const wallS = (performance.now() - stats.t0) / 1000;
  const sparse = (h) => {
    const out = [];
    for (let k = 0; k < h.counts.length; k += 1) if (h.counts[k] !== 0) out.push([k, h.counts[k]]);
    return out;
  };
  return {
    received: stats.received,
    distinctTotal,
    reconnectsInFlight,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    wallSeconds: wallS,
    ...(full
      ? {
          live: sparse(stats.live),
          reconnect: sparse(stats.reconnect),
          replayed: stats.replayed,
          duplicates: stats.duplicates,
          outOfOrder: stats.outOfOrder,
          reconnects: stats.reconnects,
          reconnectFailures: stats.reconnectFailures,
          resumeIncomplete: stats.resumeIncomplete,
          ended: stats.ended,
          endReasons: stats.endReasons,
          verified: stats.verified,
          verifyFailed: stats.verifyFailed,
          distinct: Array.from(distinct),
          ...(idsOf !== undefined ? { idsOf } : {}),
          openOf: conns.map((c) => (c !== undefined && !c.over ? 1 : 0)),
          reconnectsOf: Array.from(reconnectsOf),
          open: conns.filter((c) => c !== undefined && !c.over).length,
        }
      : {}),
  };
}

process.on('message', async (msg) => {
  try {
    switch (msg.type) {
      case 'init': {
        cfg = msg;
        if (cfg.ca) cfg.ca = Buffer.from(cfg.ca);
        signerKey = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(cfg.signerPublicKey, 'base64')]), format: 'der', type: 'spki' });
        devices = msg.devices.map((d) => ({ id: d.id, user: d.user, key: createPrivateKey({ key: Buffer.from(d.key, 'base64'), format: 'der', type: 'pkcs8' }) }));
        conns = new Array(devices.length);
        booted = new Uint8Array(devices.length);
        lastMs = new Float64Array(devices.length);
        lastSeq = new Float64Array(devices.length);
        distinct = new Uint32Array(devices.length);
        reconnectStartWall = new Float64Array(devices.length);
        ticket = new Array(devices.length);
        reconnectsOf = new Uint16Array(devices.length);
        process.send({ type: 'ready' });
        break;
      }
      case 'connect':
        process.send({ type: 'connected', ...(await connectAll(msg.concurrency, msg.resume)) });
        break;
      case 'disconnect':
        await disconnectAll();
        process.send({ type: 'disconnected' });
        break;
      case 'reset':
        stats.reset();
        distinct.fill(0);
        reconnectsOf.fill(0);
        if (idsOf !== undefined) idsOf = [];
        distinctTotal = 0;
        process.send({ type: 'reset' });
        break;
      case 'churn':
        startChurn(msg.perSec);
        process.send({ type: 'churning' });
        break;
      case 'stop-churn':
        clearInterval(churnTimer);
        process.send({ type: 'stopped' });
        break;
      case 'stats':
        process.send({ type: 'stats', ...snapshot(msg.full) });
        break;
      case 'exit':
        process.exit(0);
        break;
      default:
        throw new Error(`unknown message ${msg.type}`);
    }
  } catch (error) {
    process.send({ type: 'error', error: String(error?.stack ?? error) });
  }
});
process.on('disconnect', () => process.exit(0));

// Micro-benchmark of @edge-gateway/protocol's protobuf encoding of a push event (issue 25,
// "Known costs"): µs per `encodeGatewayEvent` for 100 B, 256 B, 1 KiB and 4 KiB payloads,
// "before" (the writer protocol had until the sized writer: a number[] per message and BigInt
// varints, copied below verbatim), "after" (the built package: the message is sized first and
// written into one Uint8Array) and ts-proto (the gRPC adapter's generated code) for reference.
// Checks that all three give the same bytes before timing. A few seconds; the machine is
// shared, so it prints the load average with the figures.
//
//   node bench/protocol-encode.mjs [--rounds 9] [--round-ms 100] [--json]
// (over the BUILT packages: `npm run build` first)
import { loadavg } from 'node:os';
import { GatewayEvent as TsProtoGatewayEvent } from '@edge-gateway/adapters-grpc/generated';
import { encodeGatewayEvent } from '@edge-gateway/protocol';
import { num, parseOptions } from './lib.mjs';

export const OPTIONS = { rounds: 'number', 'round-ms': 'number', json: 'boolean' };

const utf8Encoder = new TextEncoder();

/** The writer before the sized one (packages/protocol/src/protobuf-wire.ts until issue 25). */
class LegacyProtoWriter {
  out = [];
  varint(value) {
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      this.out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.out.push(Number(v));
  }
  int64(field, value) {
    if (value === 0) return this;
    this.varint(BigInt((field << 3) | 0));
    this.varint(BigInt(value));
    return this;
  }
  bytes(field, value) {
    if (value.length === 0) return this;
    this.varint(BigInt((field << 3) | 2));
    this.varint(BigInt(value.length));
    for (const b of value) this.out.push(b);
    return this;
  }
  string(field, value) {
    return this.bytes(field, utf8Encoder.encode(value));
  }
  finish() {
    return Uint8Array.from(this.out);
  }
}

const legacyEncode = (m) =>
  new LegacyProtoWriter()
    .string(1, m.eventId)
    .string(2, m.eventType)
    .string(3, m.userId)
    .string(4, m.deviceSessionId)
    .int64(5, m.timestampMs)
    .bytes(6, m.payload)
    .string(7, m.signerKeyId)
    .bytes(8, m.signature)
    .finish();

const tsProtoEncode = (m) => TsProtoGatewayEvent.encode(m).finish();

/** A signed client event as the hub delivers it (ids and keys of production length). */
function eventOf(payloadBytes) {
  return {
    eventId: '1764201600123-17',
    eventType: 'chat.message',
    userId: 'user-0001234',
    deviceSessionId: 'ds-0001234-a',
    timestampMs: 1_764_201_600_123,
    payload: Buffer.from(Array.from({ length: payloadBytes }, (_, i) => (i * 31 + 7) & 0xff)),
    signerKeyId: '0011223344556677',
    signature: Buffer.alloc(64, 0xab),
  };
}

/**
 * µs per call of each encoder over `rounds` rounds of about `roundMs` each, the encoders
 * interleaved round by round so that they share the machine's noise: the best round (the
 * least disturbed by other processes) and the median.
 */
function measure(encoders, event, rounds, roundMs) {
  let sink = 0;
  const perRound = encoders.map((encode) => {
    // Warm-up, which also sets the iteration count of a round.
    let n = 0;
    const end = performance.now() + roundMs;
    while (performance.now() < end) {
      for (let i = 0; i < 100; i += 1) sink += encode(event).length;
      n += 100;
    }
    return n;
  });
  const samples = encoders.map(() => []);
  for (let r = 0; r < rounds; r += 1) {
    encoders.forEach((encode, e) => {
      const n = perRound[e];
      const start = process.hrtime.bigint();
      for (let i = 0; i < n; i += 1) sink += encode(event).length;
      samples[e].push(Number(process.hrtime.bigint() - start) / 1000 / n);
    });
  }
  if (sink === 0) throw new Error('nothing encoded');
  return samples.map((s) => {
    s.sort((a, b) => a - b);
    return { best: s[0], median: s[Math.floor(s.length / 2)] };
  });
}

export function runProtocolEncode(argv) {
  const args = parseOptions('protocol-encode.mjs', OPTIONS, argv);
  const rounds = num(args, 'rounds', 9);
  const roundMs = num(args, 'round-ms', 100);
  const load = loadavg();
  const rows = [];
  for (const size of [100, 256, 1024, 4096]) {
    const event = eventOf(size);
    const after = encodeGatewayEvent(event);
    if (!Buffer.from(after).equals(Buffer.from(legacyEncode(event))) || !Buffer.from(after).equals(Buffer.from(tsProtoEncode(event)))) {
      throw new Error(`encodings differ for a ${size}-byte payload`);
    }
    const r2 = (x) => Math.round(x * 100) / 100;
    const [before, sized, tsProto] = measure([legacyEncode, encodeGatewayEvent, tsProtoEncode], event, rounds, roundMs);
    rows.push({
      payloadBytes: size,
      eventBytes: after.length,
      beforeUs: r2(before.best),
      afterUs: r2(sized.best),
      tsProtoUs: r2(tsProto.best),
      speedup: r2(before.best / sized.best),
      median: { beforeUs: r2(before.median), afterUs: r2(sized.median), tsProtoUs: r2(tsProto.median) },
    });
  }
  const result = { at: new Date().toISOString(), loadavg: load.map((x) => Math.round(x * 100) / 100), loadavgAfter: loadavg().map((x) => Math.round(x * 100) / 100), node: process.version, rounds, roundMs, rows };
  if (args.json) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    console.log(`encodeGatewayEvent, µs per event, best of ${rounds} rounds (median in brackets); load average ${result.loadavg.join(' ')} (shared machine)`);
    console.log('| payload | event bytes | before | after (sized writer) | ts-proto | before ÷ after |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    for (const r of rows) {
      console.log(`| ${r.payloadBytes} B | ${r.eventBytes} | ${r.beforeUs} (${r.median.beforeUs}) | ${r.afterUs} (${r.median.afterUs}) | ${r.tsProtoUs} (${r.median.tsProtoUs}) | ${r.speedup}x |`);
    }
    console.log(`load average after: ${result.loadavgAfter.join(' ')}`);
  }
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runProtocolEncode(process.argv.slice(2));
  process.exit(0);
}

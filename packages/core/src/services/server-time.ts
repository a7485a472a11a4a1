// Minimal protobuf encoding of `edgegateway.v1.ServerTime` so the core needs no protobuf
// runtime: field 1 `int64 server_time_ms` (varint), field 2 `string request_id`.

function varint(value: bigint, out: number[]): void {
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

/** Encodes the `ServerTime` payload of the `gateway.server_time` bootstrap event. */
export function encodeServerTime(serverTimeMs: number, requestId: string): Uint8Array {
  const out: number[] = [];
  if (serverTimeMs !== 0) {
    out.push(0x08);
    varint(BigInt(serverTimeMs), out);
  }
  const id = Buffer.from(requestId, 'utf8');
  if (id.length > 0) {
    out.push(0x12);
    varint(BigInt(id.length), out);
    for (const b of id) out.push(b);
  }
  return Uint8Array.from(out);
}

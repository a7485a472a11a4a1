// The protobuf writer @edge-gateway/protocol had before the sized writer (a number[] per
// message, BigInt varints), kept verbatim as the reference the new encoders must match byte
// for byte. bench/protocol-encode.mjs has the same writer as its "before".

const utf8Encoder = new TextEncoder();

export class LegacyProtoWriter {
  private readonly out: number[] = [];

  private varint(value: bigint): void {
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      this.out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.out.push(Number(v));
  }

  int64(field: number, value: number): this {
    if (value === 0) return this;
    this.varint(BigInt((field << 3) | 0));
    this.varint(BigInt(value));
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    if (value.length === 0) return this;
    this.varint(BigInt((field << 3) | 2));
    this.varint(BigInt(value.length));
    for (const b of value) this.out.push(b);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, utf8Encoder.encode(value));
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

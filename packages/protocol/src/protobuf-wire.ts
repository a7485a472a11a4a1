// A minimal proto3 wire codec for the few EdgeGateway messages (varint, length-delimited),
// so the protocol needs no protobuf runtime and loads in a browser as plain ES modules.

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** Text of UTF-8 `bytes`; throws on invalid UTF-8. */
export function fromUtf8(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}

/** Thrown for bytes that are not a valid encoding of the expected message. */
export class WireFormatError extends Error {
  override readonly name = 'WireFormatError';
  readonly code = 'invalid_wire_format';
}

/** Appends proto3 fields; default values (0, '', empty bytes) are skipped, as protobuf does. */
export class ProtoWriter {
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
    return this.bytes(field, utf8(value));
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

/** One decoded field: a varint or a length-delimited value. */
export type ProtoField = { field: number; varint: bigint; bytes?: undefined } | { field: number; bytes: Uint8Array; varint?: undefined };

/** Reads every field of one message; unknown wire types (fixed32/64) are skipped as protobuf does. */
export function readFields(data: Uint8Array): ProtoField[] {
  const fields: ProtoField[] = [];
  let offset = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i += 1) {
      const byte = data[offset];
      if (byte === undefined) throw new WireFormatError('truncated varint');
      offset += 1;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new WireFormatError('varint longer than 10 bytes');
  };
  const skip = (n: number): void => {
    if (offset + n > data.length) throw new WireFormatError('truncated field');
    offset += n;
  };
  while (offset < data.length) {
    const tag = varint();
    const field = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (field === 0) throw new WireFormatError('field number 0');
    if (wire === 0) {
      fields.push({ field, varint: varint() });
    } else if (wire === 2) {
      const length = Number(varint());
      const start = offset;
      skip(length);
      fields.push({ field, bytes: data.subarray(start, start + length) });
    } else if (wire === 1) {
      skip(8);
    } else if (wire === 5) {
      skip(4);
    } else {
      throw new WireFormatError(`unsupported wire type ${wire}`);
    }
  }
  return fields;
}

/** A typed view of decoded fields (last value wins, as in protobuf). */
export class FieldReader {
  private readonly byNumber = new Map<number, ProtoField>();

  constructor(data: Uint8Array) {
    for (const f of readFields(data)) this.byNumber.set(f.field, f);
  }

  int64(field: number): number {
    const f = this.byNumber.get(field);
    if (f === undefined) return 0;
    if (f.varint === undefined) throw new WireFormatError(`field ${field} is not a varint`);
    const value = BigInt.asIntN(64, f.varint);
    // A JavaScript number holds it exactly only within ±2^53 (the gRPC adapter refuses the same).
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new WireFormatError(`field ${field} is beyond ±2^53`);
    }
    return Number(value);
  }

  bytes(field: number): Uint8Array {
    const f = this.byNumber.get(field);
    if (f === undefined) return new Uint8Array(0);
    if (f.bytes === undefined) throw new WireFormatError(`field ${field} is not length-delimited`);
    return f.bytes.slice();
  }

  string(field: number): string {
    const f = this.byNumber.get(field);
    if (f === undefined) return '';
    if (f.bytes === undefined) throw new WireFormatError(`field ${field} is not length-delimited`);
    try {
      return fromUtf8(f.bytes);
    } catch {
      throw new WireFormatError(`field ${field} is not valid UTF-8`);
    }
  }
}

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

/** How a field of a {@link MessageSchema} is written: proto3 `string`, `bytes` or `int64`. */
export const FieldKinds = { string: 0, bytes: 1, int64: 2 } as const;

/** One field of a message: its number, its kind and the property that holds it. */
export type SchemaField<T> = readonly [field: number, kind: (typeof FieldKinds)[keyof typeof FieldKinds], key: keyof T & string];

/** The fields of a message in the order they are written (field number order, as protoc does). */
export type MessageSchema<T> = readonly SchemaField<T>[];

/** Bytes of `value` as a varint; `value` is a non-negative safe integer. */
function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  let size = 4;
  for (let v = Math.floor(value / 0x10000000); v > 0; v = Math.floor(v / 0x80)) size += 1;
  return size;
}

/** Writes a non-negative safe integer as a varint at `at`; returns the offset after it. */
function writeVarint(out: Uint8Array, at: number, value: number): number {
  let v = value;
  while (v > 0x7fffffff) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  while (v > 0x7f) {
    out[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[at++] = v;
  return at;
}

/**
 * The varint bytes of an int64 that is negative or beyond ±2^53 (two's complement over 64 bits,
 * so a negative value takes 10 bytes, as protobuf writes it). Rare, so BigInt is fine here; a
 * value that is not an integer throws a RangeError, as the writer always did.
 */
function slowInt64(value: number): number[] {
  const bytes: number[] = [];
  let v = BigInt.asUintN(64, BigInt(value));
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return bytes;
}

const isFastInt64 = (value: number): boolean => value > 0 && value <= Number.MAX_SAFE_INTEGER && Number.isInteger(value);

/**
 * UTF-8 length of `text` as `TextEncoder` writes it: a lone surrogate becomes U+FFFD (3 bytes).
 */
export function utf8Length(text: string): number {
  const n = text.length;
  let size = n;
  for (let i = 0; i < n; i += 1) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      size += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      size += 2; // a pair: 2 UTF-16 units, 4 bytes
      i += 1;
    } else {
      size += 2;
    }
  }
  return size;
}

// Strings of at most this many UTF-16 units are written byte by byte when they are ASCII;
// longer or non-ASCII ones go through TextEncoder.encodeInto.
const ASCII_LOOP_MAX = 64;

// Byte lengths of the string fields of the message being encoded (sized, then written; the
// encoder is synchronous, so one scratch array serves every call).
const scratchLengths: number[] = [];

/**
 * Encodes `message` with `schema` as proto3 does (default values, 0, '' and empty bytes, are
 * not written): sizes the whole message first, then writes it into one `Uint8Array` of exactly
 * that size. The same bytes as protoc's and ts-proto's writers (tested against both).
 */
export function encodeMessage<T>(schema: MessageSchema<T>, message: T): Uint8Array {
  let size = 0;
  for (let i = 0; i < schema.length; i += 1) {
    const [field, kind, key] = schema[i] as SchemaField<T>;
    const value = message[key] as unknown;
    let length: number;
    if (kind === FieldKinds.string) {
      length = utf8Length(value as string);
      scratchLengths[i] = length;
      if (length === 0) continue;
      size += varintSize(length) + length;
    } else if (kind === FieldKinds.bytes) {
      length = (value as Uint8Array).length;
      if (length === 0) continue;
      size += varintSize(length) + length;
    } else {
      const v = value as number;
      if (v === 0) continue;
      size += isFastInt64(v) ? varintSize(v) : slowInt64(v).length;
    }
    size += varintSize(field << 3);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (let i = 0; i < schema.length; i += 1) {
    const [field, kind, key] = schema[i] as SchemaField<T>;
    const value = message[key] as unknown;
    if (kind === FieldKinds.string) {
      const length = scratchLengths[i] as number;
      if (length === 0) continue;
      at = writeVarint(out, writeVarint(out, at, (field << 3) | 2), length);
      const text = value as string;
      if (length === text.length && length <= ASCII_LOOP_MAX) {
        for (let j = 0; j < length; j += 1) out[at + j] = text.charCodeAt(j);
      } else {
        const { written } = utf8Encoder.encodeInto(text, out.subarray(at, at + length));
        if (written !== length) throw new Error(`UTF-8 length ${written} is not the sized ${length}`);
      }
      at += length;
    } else if (kind === FieldKinds.bytes) {
      const bytes = value as Uint8Array;
      if (bytes.length === 0) continue;
      at = writeVarint(out, writeVarint(out, at, (field << 3) | 2), bytes.length);
      out.set(bytes, at);
      at += bytes.length;
    } else {
      const v = value as number;
      if (v === 0) continue;
      at = writeVarint(out, at, field << 3);
      if (isFastInt64(v)) {
        at = writeVarint(out, at, v);
      } else {
        for (const b of slowInt64(v)) out[at++] = b;
      }
    }
  }
  return out;
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

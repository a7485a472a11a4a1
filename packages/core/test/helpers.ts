/**
 * Shared helpers of the core unit tests (outside `src`, so never built or published).
 * Unit tests import them with a relative path.
 */
import { generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  type CommandRequest,
  type DeviceSession,
  type DownstreamCommand,
  type DownstreamResult,
  type GatewayEvent,
  type RawFields,
  type SubscribeRequest,
} from '../src/domain.js';
import { type GatewayError } from '../src/errors.js';
import { type CommandDownstream, type DownstreamCallContext } from '../src/ports/command-router.port.js';
import { type LogFields, type Logger } from '../src/ports/logger.port.js';
import { type ReplayReservation, type ReplayStore } from '../src/ports/replay-store.port.js';
import { type ResponseSigner } from '../src/ports/response-signer.port.js';
import { type PushSink } from '../src/push/push-hub.js';
import { commandRequestBytes, eventBytes, subscribeRequestBytes } from '../src/signing/canonical.js';
import { ed25519PublicKeyFromRaw, rawPublicKey } from '../src/signing/keys.js';
import { Ed25519ResponseSigner } from '../src/signing/signer.js';
import { clientEventFields as buildClientEventFields } from '@edge-gateway/protocol';

// ---------------------------------------------------------------------------------------
// Signing vectors (packages/core/test/vectors/signing.json)

export interface VectorKey {
  readonly private_key_pem: string;
  readonly public_key_base64: string;
  readonly key_id: string;
}

export interface VectorCase {
  readonly name: string;
  readonly signer: 'client' | 'gateway';
  readonly fields: Readonly<Record<string, string | number>>;
  readonly canonical_hex: string;
  readonly signature_hex: string;
}

export interface SigningVectors {
  readonly keys: { readonly client: VectorKey; readonly gateway: VectorKey };
  readonly cases: readonly VectorCase[];
}

export const vectors: SigningVectors = JSON.parse(
  readFileSync(new URL('./vectors/signing.json', import.meta.url), 'utf8'),
) as SigningVectors;

/** The gateway response signer of the vectors (a real Ed25519 signer). */
export function vectorSigner(): Ed25519ResponseSigner {
  return Ed25519ResponseSigner.fromPem(vectors.keys.gateway.private_key_pem);
}

/** A `ResponseSigner` that counts `sign` calls of a real signer. */
export class CountingSigner implements ResponseSigner {
  calls = 0;
  constructor(private readonly inner: ResponseSigner = vectorSigner()) {}
  get keyId(): string {
    return this.inner.keyId;
  }
  get publicKey(): Uint8Array {
    return this.inner.publicKey;
  }
  sign(data: Uint8Array): Uint8Array {
    this.calls += 1;
    return this.inner.sign(data);
  }
}

/**
 * A real signer that records whether each signature was made inline (`sign`) or in the
 * threadpool (`signAsync`); `failNext` makes the next `signAsync` reject.
 */
export class ModeRecordingSigner implements ResponseSigner {
  readonly modes: Array<'inline' | 'threadpool'> = [];
  failNext = false;
  private readonly inner = vectorSigner();
  readonly keyId = this.inner.keyId;
  readonly publicKey = this.inner.publicKey;
  sign(data: Uint8Array): Uint8Array {
    this.modes.push('inline');
    return this.inner.sign(data);
  }
  signAsync(data: Uint8Array): Promise<Uint8Array> {
    this.modes.push('threadpool');
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error('signer unavailable'));
    }
    return this.inner.signAsync(data);
  }
}

/** True when `event.signature` is a valid signature of its canonical bytes by `publicKey`. */
export function eventVerifies(publicKey: Uint8Array, event: GatewayEvent): boolean {
  return verify(null, eventBytes(event), ed25519PublicKeyFromRaw(publicKey), event.signature);
}

// ---------------------------------------------------------------------------------------
// Devices (client keys, records, signed requests)

/** A device with its own Ed25519 key pair, able to sign requests like a real client. */
export class TestDevice {
  readonly privateKey: KeyObject;
  readonly publicKeyRaw: Buffer;

  constructor(
    readonly deviceSessionId: string,
    readonly userId: string,
    privateKey?: KeyObject,
  ) {
    this.privateKey = privateKey ?? generateKeyPairSync('ed25519').privateKey;
    this.publicKeyRaw = rawPublicKey(this.privateKey);
  }

  get publicKeyBase64(): string {
    return this.publicKeyRaw.toString('base64');
  }

  /** The session record / snapshot fields of SPEC §5.1. */
  record(status: string = 'active', extra: RawFields = {}): Record<string, string> {
    return {
      device_session_id: this.deviceSessionId,
      user_id: this.userId,
      status,
      client_public_key: this.publicKeyBase64,
      ...extra,
    };
  }

  session(status: 'active' | 'revoked' = 'active'): DeviceSession {
    return { deviceSessionId: this.deviceSessionId, userId: this.userId, status, clientPublicKey: new Uint8Array(this.publicKeyRaw) };
  }

  /** A signed ExecuteCommand request; `overrides` are applied before signing unless `signature` is given. */
  command(overrides: Partial<CommandRequest> = {}): CommandRequest {
    const unsigned = {
      deviceSessionId: this.deviceSessionId,
      messageType: 'profile.get',
      requestId: `req-${(requestCounter += 1)}`,
      timestampMs: 0,
      payload: new Uint8Array(Buffer.from('{"q":1}')),
      ...overrides,
    };
    const signature = overrides.signature ?? sign(null, commandRequestBytes(unsigned), this.privateKey);
    return { ...unsigned, signature };
  }

  /** A signed SubscribeEvents request. */
  subscribe(overrides: Partial<SubscribeRequest> = {}): SubscribeRequest {
    const unsigned = {
      deviceSessionId: this.deviceSessionId,
      requestId: `sub-${(requestCounter += 1)}`,
      timestampMs: 0,
      resumeAfterEventId: '',
      ...overrides,
    };
    const signature = overrides.signature ?? sign(null, subscribeRequestBytes(unsigned), this.privateKey);
    return { ...unsigned, signature };
  }
}

let requestCounter = 0;

/** A copy of `bytes` with one bit flipped at `index`. */
export function flipByte(bytes: Uint8Array, index = 0): Uint8Array {
  const out = new Uint8Array(bytes);
  out[index] = (out[index] ?? 0) ^ 0x01;
  return out;
}

// ---------------------------------------------------------------------------------------
// Metrics

export { MetricsHarness } from '../src/testing/metrics-harness.js';

// ---------------------------------------------------------------------------------------
// Logging

export interface LogLine {
  readonly level: 'error' | 'warn' | 'info' | 'debug';
  readonly message: string;
  readonly fields: LogFields;
}

/** A `Logger` that keeps every line (children share the same list). */
export class CapturingLogger implements Logger {
  constructor(
    readonly lines: LogLine[] = [],
    private readonly base: LogFields = {},
  ) {}
  error(message: string, fields?: LogFields): void {
    this.push('error', message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    this.push('warn', message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.push('info', message, fields);
  }
  debug(message: string, fields?: LogFields): void {
    this.push('debug', message, fields);
  }
  child(fields: LogFields): Logger {
    return new CapturingLogger(this.lines, { ...this.base, ...fields });
  }
  /** Lines with this message. */
  find(message: string): LogLine[] {
    return this.lines.filter((line) => line.message === message);
  }
  /**
   * Every line serialized as JSON. Byte arrays are rendered as hex AND base64 so a leaked
   * payload or signature shows up in whichever form the test searches for.
   */
  serialized(): string {
    return JSON.stringify(this.lines, (_key, value: unknown) => {
      if (value instanceof Uint8Array) {
        const b = Buffer.from(value);
        return `BYTES(${b.toString('hex')}|${b.toString('base64')})`;
      }
      if (value instanceof Error) return `${value.name}: ${value.message}`;
      return value;
    });
  }
  private push(level: LogLine['level'], message: string, fields: LogFields = {}): void {
    this.lines.push({ level, message, fields: { ...this.base, ...fields } });
  }
}

/** Asserts-by-value helper: true when no serialized log line holds any form of `bytes`. */
export function logsHide(logger: CapturingLogger, bytes: Uint8Array): boolean {
  const text = logger.serialized();
  const b = Buffer.from(bytes);
  return (
    !text.includes('BYTES(') &&
    !text.includes(b.toString('hex')) &&
    !text.includes(b.toString('base64')) &&
    !text.includes(b.toString('utf8'))
  );
}

// ---------------------------------------------------------------------------------------
// Async control

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A replay store whose reservations stay pending until the test settles them, so the test
 * can act while a request is between its replay reservation and the downstream call.
 */
export class ControlledReplayStore implements ReplayStore {
  readonly calls: Array<{ deviceSessionId: string; requestId: string; ttlMs: number; outcome: Deferred<ReplayReservation> }> = [];
  private readonly waiters: Array<() => void> = [];

  reserve(deviceSessionId: string, requestId: string, ttlMs: number): Promise<ReplayReservation> {
    const outcome = deferred<ReplayReservation>();
    this.calls.push({ deviceSessionId, requestId, ttlMs, outcome });
    for (const wake of this.waiters.splice(0)) wake();
    return outcome.promise;
  }

  /** Resolves once `n` reservations have been requested. */
  async reached(n = 1): Promise<void> {
    while (this.calls.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}

/** A replay store that counts reservations and delegates to another one. */
export class CountingReplayStore implements ReplayStore {
  calls = 0;
  constructor(private readonly inner: ReplayStore) {}
  reserve(deviceSessionId: string, requestId: string, ttlMs: number): Promise<ReplayReservation> {
    this.calls += 1;
    return this.inner.reserve(deviceSessionId, requestId, ttlMs);
  }
  releases = 0;
  async release(deviceSessionId: string, requestId: string): Promise<void> {
    this.releases += 1;
    await this.inner.release?.(deviceSessionId, requestId);
  }
}

// ---------------------------------------------------------------------------------------
// Downstream and push sinks

export type DownstreamBehaviour = (command: DownstreamCommand, context: DownstreamCallContext) => Promise<DownstreamResult> | DownstreamResult;

/** A fake business service recording every call. */
export class FakeDownstream implements CommandDownstream {
  readonly calls: Array<{ command: DownstreamCommand; context: DownstreamCallContext }> = [];
  constructor(
    readonly target = 'fake-downstream:1',
    public behaviour: DownstreamBehaviour = () => ({ resultCode: 'ok', payload: new Uint8Array(Buffer.from('{"name":"Ada"}')) }),
  ) {}
  async execute(command: DownstreamCommand, context: DownstreamCallContext): Promise<DownstreamResult> {
    this.calls.push({ command, context });
    return this.behaviour(command, context);
  }
}

/** A push sink that records writes and the end; `accept` is what `write` returns. */
export class RecordingSink implements PushSink {
  readonly events: GatewayEvent[] = [];
  readonly ends: Array<GatewayError | undefined> = [];
  accept = true;

  write(event: GatewayEvent): boolean {
    this.events.push(event);
    return this.accept;
  }
  end(error: GatewayError | undefined): void {
    this.ends.push(error);
  }
  get ended(): boolean {
    return this.ends.length > 0;
  }
  get types(): string[] {
    return this.events.map((e) => e.eventType);
  }
  get ids(): string[] {
    return this.events.map((e) => e.eventId);
  }
}

// ---------------------------------------------------------------------------------------
// Protobuf (by hand)

/** Decodes `edgegateway.v1.ServerTime` (the protocol package's codec, as devices do). */
export { decodeServerTime } from '@edge-gateway/protocol';

/** Client-events stream entry fields (SPEC §5.4). */
export function clientEventFields(
  userId: string,
  eventType: string,
  payload: string | Uint8Array,
  deviceSessionId?: string,
): Record<string, string> {
  return buildClientEventFields({ userId, eventType, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, ...(deviceSessionId === undefined ? {} : { deviceSessionId }) });
}

import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { keyId, rawPublicKey } from '@edge-gateway/core';
import { GatewayClient, GatewayStatusError, type VerifiedEvent } from '@edge-gateway/client';
import { DEMO_DEVICE, devPaths } from './dev-files.js';
import { clientEventFields } from '@edge-gateway/protocol';

/** Titles of the demo steps, in order (each printed with ✓ or ✗). */
export const DEMO_STEPS = [
  'load the development keys',
  'activate the demo device session',
  'open a push stream (bootstrap event)',
  'run a signed echo.ping command and verify the signed answer',
  'publish a client event and receive it',
  'revoke the session: the stream closes with FAILED_PRECONDITION',
  'a command on the revoked session is refused',
] as const;

export interface DemoOptions {
  /** Gateway gRPC address, `host:port`. */
  readonly grpcAddress: string;
  /** Base URL of the dev admin listener (dev routes), e.g. `http://127.0.0.1:9100`. */
  readonly adminUrl: string;
  /** The development folder holding the demo-device key and the gateway public key. */
  readonly devDir: string;
  /** Where lines go (default: stdout). */
  readonly print?: (line: string) => void;
  /** Bound on each step (default 10 s). */
  readonly stepTimeoutMs?: number;
}

class StepFailure extends Error {}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new StepFailure(message);
}

async function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StepFailure(`${what}: no answer within ${ms}ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function devRoute(adminUrl: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> {
  const url = new URL(path, adminUrl.endsWith('/') ? adminUrl : `${adminUrl}/`);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error instanceof Error ? error.message : String(error));
    throw new StepFailure(`${method} ${url.href} failed (${cause}): is "npm run dev" running?`);
  }
  const answer = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  check(response.ok, `${method} ${url.pathname} answered ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

function describeError(error: unknown): string {
  if (error instanceof GatewayStatusError) return `${error.codeName} "${error.details}"`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * The scripted tour of `npm run demo` against the development gateway. Prints one ✓/✗
 * line per step (later steps are skipped after a failure) and resolves true when every
 * step passed.
 */
export async function runDemo(options: DemoOptions): Promise<boolean> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const timeoutMs = options.stepTimeoutMs ?? 10_000;
  const paths = devPaths(options.devDir);
  const abort = new AbortController();
  let client: GatewayClient | undefined;
  let events: AsyncIterator<VerifiedEvent> | undefined;
  let deviceKey: KeyObject | undefined;
  let gatewayKey: Buffer | undefined;

  const steps: Array<() => Promise<string>> = [
    async () => {
      try {
        deviceKey = createPrivateKey(readFileSync(paths.demoDeviceKey, 'utf8'));
        gatewayKey = Buffer.from(readFileSync(paths.gatewayPublicKey, 'utf8').trim(), 'base64');
      } catch (error) {
        throw new StepFailure(`cannot read the keys in ${paths.dir} (${(error as NodeJS.ErrnoException).code ?? error}): start "npm run dev" first`);
      }
      check(gatewayKey.length === 32, `${paths.gatewayPublicKey} does not hold a 32-byte key`);
      return `device key ${paths.demoDeviceKey}; trusting gateway signer key id ${keyId(gatewayKey)}`;
    },
    async () => {
      const answer = await devRoute(options.adminUrl, 'POST', 'dev/sessions', {
        device_session_id: DEMO_DEVICE.deviceSessionId,
        user_id: DEMO_DEVICE.userId,
        client_public_key: rawPublicKey(deviceKey as KeyObject).toString('base64'),
      });
      return `${DEMO_DEVICE.deviceSessionId} of ${DEMO_DEVICE.userId} is active (snapshot ${String(answer['snapshot_id'])})`;
    },
    async () => {
      client = new GatewayClient({
        address: options.grpcAddress,
        deviceSessionId: DEMO_DEVICE.deviceSessionId,
        userId: DEMO_DEVICE.userId,
        privateKey: deviceKey as KeyObject,
        gatewayPublicKeys: [gatewayKey as Buffer],
      });
      events = client.subscribe({ signal: abort.signal })[Symbol.asyncIterator]();
      const first = await within(events.next(), timeoutMs, 'bootstrap event');
      check(first.done !== true, 'the stream ended before the bootstrap event');
      const event = first.value;
      check(event.serverTime !== undefined, `first event is ${event.eventType}, expected gateway.server_time`);
      return `${event.eventType} for ${event.userId}/${event.deviceSessionId}, server_time_ms=${event.serverTime.serverTimeMs}, request_id=${event.serverTime.requestId}, signer_key_id=${event.signerKeyId} (signature verified)`;
    },
    async () => {
      const payload = Buffer.from('hello from the demo');
      const response = await within((client as GatewayClient).execute('echo.ping', payload, { timeoutMs }), timeoutMs, 'echo.ping');
      check(response.resultCode === 'ok', `result_code is ${response.resultCode}, expected ok`);
      check(Buffer.from(response.payload).equals(payload), 'the echoed payload differs from what was sent');
      return `result_code=${response.resultCode}, payload "${Buffer.from(response.payload).toString('utf8')}", request_id=${response.requestId}, signer_key_id=${response.signerKeyId} (signature verified)`;
    },
    async () => {
      const payload = Buffer.from(JSON.stringify({ text: 'hello, demo-user' }));
      const answer = await devRoute(options.adminUrl, 'POST', 'dev/events', clientEventFields({ ...DEMO_DEVICE, eventType: 'demo.greeting', payload }));
      const next = await within((events as AsyncIterator<VerifiedEvent>).next(), timeoutMs, 'published event');
      check(next.done !== true, 'the stream ended before the event arrived');
      const event = next.value;
      check(event.eventId === answer['entry_id'], `received event ${event.eventId}, published ${String(answer['entry_id'])}`);
      check(event.eventType === 'demo.greeting' && Buffer.from(event.payload).equals(payload), 'the received event differs from the published one');
      return `published entry ${event.eventId}; received ${event.eventType} ${Buffer.from(event.payload).toString('utf8')} (signature verified)`;
    },
    async () => {
      await devRoute(options.adminUrl, 'POST', `dev/sessions/${DEMO_DEVICE.deviceSessionId}/revoke`);
      try {
        const next = await within((events as AsyncIterator<VerifiedEvent>).next(), timeoutMs, 'stream close');
        throw new StepFailure(next.done === true ? 'the stream ended without a status' : `received ${next.value.eventType} instead of a close`);
      } catch (error) {
        if (error instanceof StepFailure) throw error;
        check(
          error instanceof GatewayStatusError && error.code === GrpcStatus.FAILED_PRECONDITION && error.details === 'device session is revoked',
          `the stream ended with ${describeError(error)}`,
        );
        return `the stream closed with ${describeError(error)}`;
      }
    },
    async () => {
      try {
        await within((client as GatewayClient).execute('echo.ping', Buffer.from('after revoke'), { timeoutMs }), timeoutMs, 'echo.ping');
      } catch (error) {
        if (error instanceof StepFailure) throw error;
        check(error instanceof GatewayStatusError && error.code === GrpcStatus.FAILED_PRECONDITION, `refused with ${describeError(error)}`);
        return `refused with ${describeError(error)}`;
      }
      throw new StepFailure('the command ran on a revoked session');
    },
  ];

  print(`edge-gateway demo against grpc ${options.grpcAddress}, dev routes ${options.adminUrl}`);
  let passed = 0;
  try {
    for (const [index, step] of steps.entries()) {
      const title = `${index + 1}/${steps.length} ${DEMO_STEPS[index] as string}`;
      try {
        const result = await step();
        print(`✓ ${title}: ${result}`);
        passed += 1;
      } catch (error) {
        print(`✗ ${title}: ${describeError(error)}`);
        for (const [later, name] of DEMO_STEPS.entries()) {
          if (later > index) print(`- ${later + 1}/${steps.length} ${name}: skipped`);
        }
        break;
      }
    }
  } finally {
    abort.abort();
    client?.close();
  }
  // The tour revoked the demo session; leave it active again, so the /demo page the README
  // opens next (and a second tour) works.
  if (passed >= 2 && deviceKey !== undefined) {
    try {
      await devRoute(options.adminUrl, 'POST', 'dev/sessions', {
        device_session_id: DEMO_DEVICE.deviceSessionId,
        user_id: DEMO_DEVICE.userId,
        client_public_key: rawPublicKey(deviceKey).toString('base64'),
      });
      print(`${DEMO_DEVICE.deviceSessionId} is active again (for the /demo page)`);
    } catch (error) {
      print(`✗ could not re-activate ${DEMO_DEVICE.deviceSessionId}: ${describeError(error)}`);
    }
  }
  print(passed === steps.length ? `all ${passed} steps passed` : `${passed} of ${steps.length} steps passed`);
  return passed === steps.length;
}

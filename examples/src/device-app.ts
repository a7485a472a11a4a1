/**
 * Example: a device app with the TypeScript client SDK (`@edge-gateway/client`).
 *
 * The device holds its Ed25519 private key (its public key went to the auth service at
 * sign-in) and trusts the gateway's public signer key(s). It opens its push stream, runs one
 * signed command, and prints every verified event until an `orders.shipped` event arrives.
 * Everything it receives is checked by the client: the gateway's signature, and that the
 * response answers its request and the events belong to its user and session.
 *
 *   GATEWAY_GRPC_ADDR=127.0.0.1:9090 DEVICE_SESSION_ID=ds-... DEVICE_KEY_PATH=device.pem \
 *   GATEWAY_PUBLIC_KEYS=<base64>[,<base64>] node examples/dist/device-app.js
 */
import { readFileSync } from 'node:fs';
import { GatewayClient, GatewayStatusError } from '@edge-gateway/client';
import { isMain, requireEnv } from './run-main.js';

/** Runs the device flow; resolves with the id of the `orders.shipped` event it waited for. */
export async function runDevice(client: GatewayClient, log: (line: string) => void, signal?: AbortSignal): Promise<string | undefined> {
  // Subscribe first: the bootstrap event also teaches the client the gateway's clock, so
  // commands carry timestamps inside the freshness window even on a device with a wrong clock.
  // autoReconnect resumes after the last event when a gateway restarts or the network drops.
  const events = client.subscribe({ autoReconnect: true, ...(signal === undefined ? {} : { signal }) })[Symbol.asyncIterator]();
  const first = await events.next();
  if (first.done === true) throw new Error('the stream ended before its bootstrap event');
  log(`stream open: ${first.value.eventType} (clock offset ${client.clockOffsetMs} ms)`);

  const created = await client.execute('orders.create', Buffer.from(JSON.stringify({ sku: 'BOOK-42', quantity: 1 })), { timeoutMs: 5000 });
  log(`orders.create -> ${created.resultCode} ${Buffer.from(created.payload).toString()}`);

  for (;;) {
    const next = await events.next();
    if (next.done === true) return undefined;
    const event = next.value;
    if (event.eventType === 'gateway.resume_incomplete') {
      // Events may have been missed while away: refetch the state this app shows.
      log('resume incomplete: refetching state');
      continue;
    }
    if (event.eventType.startsWith('gateway.')) continue;
    log(`event ${event.eventId} ${event.eventType} ${Buffer.from(event.payload).toString()}`);
    if (event.eventType === 'orders.shipped') {
      await events.return?.();
      return event.eventId;
    }
  }
}

if (isMain(import.meta.url)) {
  const client = new GatewayClient({
    address: requireEnv('GATEWAY_GRPC_ADDR'),
    deviceSessionId: requireEnv('DEVICE_SESSION_ID'),
    privateKey: readFileSync(requireEnv('DEVICE_KEY_PATH'), 'utf8'),
    // Several during a signer key rotation; each response names the key it was signed with.
    gatewayPublicKeys: requireEnv('GATEWAY_PUBLIC_KEYS').split(','),
  });
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  try {
    await runDevice(client, (line) => process.stdout.write(`${line}\n`), controller.signal);
  } catch (error) {
    // A revoked session: FAILED_PRECONDITION "device session is revoked" -> sign in again.
    if (error instanceof GatewayStatusError) process.stderr.write(`gateway refused: ${error.codeName} ${error.details}\n`);
    else process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

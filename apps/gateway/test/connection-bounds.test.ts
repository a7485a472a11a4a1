/**
 * Issue 22, request/answer bounds, against the BUILT binary: what one connection may cost the
 * gateway whatever it sends. Each test prints and asserts the figure it bounds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameTypes } from '@edge-gateway/protocol';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, writeSignerKey } from './gateway-process.js';
import { drillEnv, metricValue } from './drill-support.js';
import { RawWebSocket } from './connection-bounds-support.js';
import { EchoDownstream } from './system-support.js';

let redis: RedisServerHandle;
let signer: ReturnType<typeof writeSignerKey>;
let downstream: EchoDownstream;

beforeAll(async () => {
  redis = await startRedisServer();
  signer = writeSignerKey();
  downstream = await new EchoDownstream().start();
});

afterAll(async () => {
  downstream?.stop();
  await redis?.stop();
});

async function metrics(gateway: { adminHttp?: string | undefined }): Promise<string> {
  return (await fetch(`http://${gateway.adminHttp as string}/metrics`)).text();
}

describe('logs cost less than the traffic that causes them (SPEC §8.5)', () => {
  let gateway: GatewayProcess;
  let addresses: Awaited<ReturnType<GatewayProcess['started']>>;

  beforeAll(async () => {
    gateway = new GatewayProcess(drillEnv(redis, signer.path, { GATEWAY_WEBSOCKET_ADDR: '127.0.0.1:0', GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}` }));
    addresses = await gateway.started();
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('a flood of 11-byte execute frames writes at most 1 log byte per 10 bytes it sends; every request is still counted', async () => {
    // device_session_id "abcd" and nothing else: INVALID_ARGUMENT (message_type), a 366-byte
    // `command` line each before the bound (33 log bytes per input byte).
    const body = Uint8Array.from([0x0a, 0x04, 0x61, 0x62, 0x63, 0x64]);
    expect(1 + 4 + body.length).toBe(11);
    const before = await metrics(addresses);
    const logBytesBefore = Buffer.byteLength(gateway.raw);
    const linesBefore = gateway.logs.length;
    const client = new RawWebSocket(addresses.websocket as string);
    await client.opened;
    const FLOOD_MS = 5000;
    const WINDOW = 50;
    const started = performance.now();
    let sent = 0;
    while (performance.now() - started < FLOOD_MS && client.open) {
      for (let i = 0; i < WINDOW; i += 1) client.send(FrameTypes.execute, (sent += 1), body);
      await client.answered(sent);
    }
    expect(client.open).toBe(true);
    const inputBytes = client.bytesWritten;
    client.close();
    // The summary of the suppressed lines comes 10 s after the first one was suppressed: wait
    // for it, so the figure includes every line the flood causes.
    const summary = await gateway.waitForLog((l) => l.message === 'request failure lines suppressed' && l['transport'] === 'websocket' && l['code'] === 'INVALID_ARGUMENT', 20_000);
    const logBytes = Buffer.byteLength(gateway.raw) - logBytesBefore;
    const ratio = logBytes / inputBytes;
    const commandLines = gateway.logs.slice(linesBefore).filter((l) => l.message === 'command').length;
    console.info(
      `[bounds] 11-byte frame flood: ${sent} frames (${Math.round(sent / (FLOOD_MS / 1000))}/s), ${inputBytes} bytes sent, ${logBytes} log bytes (${commandLines} command lines, ${String(summary['suppressed'])} suppressed): ${ratio.toFixed(4)} log bytes per input byte`,
    );
    expect(ratio).toBeLessThanOrEqual(0.1);
    expect(client.statusCounts.get('3 message_type: must be 1-128 characters of [a-z0-9._-] starting with a letter')).toBe(sent);
    // Metrics still count every request; the lines not written are counted, and summed up.
    const after = await metrics(addresses);
    const grew = (name: string, labels: Record<string, string>) => metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(grew('gateway_websocket_requests_total', { method: 'ExecuteCommand', code: 'INVALID_ARGUMENT' })).toBe(sent);
    expect(grew('gateway_log_lines_suppressed_total', { reason: 'INVALID_ARGUMENT' })).toBe(sent - commandLines);
    expect(summary).toMatchObject({ level: 'warn', component: 'requests', suppressed: sent - commandLines });
    // 10 lines a second: the flood's seconds, and one more for a window cut across a second.
    expect(commandLines).toBeLessThanOrEqual(10 * (Math.ceil(FLOOD_MS / 1000) + 1));
  }, 60_000);
});

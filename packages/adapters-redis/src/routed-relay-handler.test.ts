import { describe, expect, it } from 'vitest';
import type { Logger, StreamEntry } from '@edge-gateway/core';
import { MetricsHarness } from '@edge-gateway/core/testing/metrics';
import type { RoutedEvent } from './redis-routed-publisher.js';
import { RoutedRelayHandler } from './routed-relay-handler.js';

function entry(id: string, userId: string, payload: Buffer): StreamEntry {
  return { id, fields: { user_id: userId, event_type: 'chat.message', payload_base64: payload.toString('base64') } };
}

describe('RoutedRelayHandler', () => {
  it('drops an entry over the configured GATEWAY_PUSH_MAX_EVENT_BYTES alone and relays the others in order', async () => {
    const published: RoutedEvent[] = [];
    const warnings: Array<Record<string, unknown>> = [];
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (_message, fields) => warnings.push(fields ?? {}),
      error: () => undefined,
      child: () => logger,
    };
    const harness = new MetricsHarness();
    const handler = new RoutedRelayHandler(
      { publish: async (event: RoutedEvent) => (published.push(event), { id: `h-${published.length}` }) as never },
      { metrics: harness.metrics, logger, maxEventBytes: 16 },
    );
    await handler.handleBatch([
      entry('1-0', 'u1', Buffer.from('small')),
      entry('2-0', 'u2', Buffer.alloc(17, 1)),
      entry('3-0', 'u3', Buffer.alloc(16, 2)),
    ]);
    expect(published.map((e) => e.userId)).toEqual(['u1', 'u3']);
    expect(warnings).toEqual([
      { stream: 'client_events', entry_id: '2-0', reason: 'payload exceeds GATEWAY_PUSH_MAX_EVENT_BYTES' },
    ]);
    expect(await harness.value('gateway_stream_entries_malformed_total', { stream: 'client_events' })).toBe(1);
    expect(await harness.value('gateway_stream_entries_consumed_total', { stream: 'client_events' })).toBe(3);
  });
});

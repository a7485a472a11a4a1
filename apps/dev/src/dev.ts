import 'reflect-metadata';
import { runProcess } from '@edge-gateway/node-runtime';
import { processOptions } from '@edge-gateway/gateway/process-options';

// Entry of `npm run dev`: the gateway with in-memory stores. The production binary (main.ts)
// never falls back to this.
await runProcess({ mode: 'development' }, async ({ logger, telemetry }) => {
  const { startDevGateway } = await import('./dev-gateway.js');
  return startDevGateway({ env: process.env, logger, telemetry });
}, processOptions);

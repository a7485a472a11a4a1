import 'reflect-metadata';
import { runProcess } from './process-runner.js';

// Entry of `npm run dev`: the gateway with in-memory stores. The production binary (main.ts)
// never falls back to this.
await runProcess({ mode: 'development' }, async ({ logger, telemetry }) => {
  const { startDevGateway } = await import('./dev/dev-gateway.js');
  return startDevGateway({ env: process.env, logger, telemetry });
});

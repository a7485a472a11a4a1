import 'reflect-metadata';
import { runProcess } from '@edge-gateway/node-runtime';
import { processOptions } from './process-options.js';

// The production binary. Gateway modules are loaded after telemetry is set up, so the Redis
// instrumentation patches node-redis before it is first required.
await runProcess({}, async ({ logger, telemetry }) => {
  const { startGateway } = await import('./gateway.js');
  return startGateway({ env: process.env, logger, telemetry });
}, processOptions);

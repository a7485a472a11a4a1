import 'reflect-metadata';
import { ConfigError } from './config/config.js';
import type { RunningGateway } from './gateway.js';
import { WinstonLogger, createWinstonLogger, flushLogger } from './logging.js';
import { setupTelemetry } from './telemetry.js';

const level = (['error', 'warn', 'info', 'debug'] as const).find((l) => l === process.env['GATEWAY_LOG_LEVEL']) ?? 'info';
const winstonLogger = createWinstonLogger(level);
const logger = new WinstonLogger(winstonLogger, { component: 'gateway' });

async function exit(code: number): Promise<never> {
  await flushLogger(winstonLogger);
  process.exit(code);
}

process.on('unhandledRejection', (reason) => {
  logger.error('unhandled rejection', { error: reason instanceof Error ? reason.message : String(reason) });
});

let gateway: RunningGateway | undefined;
let signals = 0;
let startupDone = false;

function onSignal(signal: NodeJS.Signals): void {
  signals += 1;
  if (signals > 1) {
    logger.error('second signal during shutdown: forcing exit', { signal });
    void exit(1);
    return;
  }
  logger.info('signal received', { signal });
  if (!startupDone) {
    void exit(1);
    return;
  }
  void gateway
    ?.shutdown()
    .then(() => exit(0))
    .catch(() => exit(1));
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

try {
  const telemetry = setupTelemetry(process.env);
  // Loaded after telemetry so the Redis instrumentation patches node-redis before it is required.
  const { startGateway } = await import('./gateway.js');
  gateway = await startGateway({ env: process.env, logger, telemetry });
  startupDone = true;
} catch (error) {
  const reason =
    error instanceof ConfigError || (error instanceof Error && error.name === 'StartupError')
      ? error.message
      : `${error instanceof Error ? error.name : 'Error'}: ${error instanceof Error ? error.message : String(error)}`;
  logger.error('startup failed', { error: reason });
  await exit(1);
}

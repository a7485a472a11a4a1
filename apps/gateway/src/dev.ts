import 'reflect-metadata';
import { ConfigError } from './config/config.js';
import type { DevGateway } from './dev/dev-gateway.js';
import { WinstonLogger, createWinstonLogger, flushLogger } from './logging.js';
import { setupTelemetry } from './telemetry.js';

// Entry of `npm run dev`: the gateway with in-memory stores. The production binary (main.ts)
// never falls back to this.
const level = (['error', 'warn', 'info', 'debug'] as const).find((l) => l === process.env['GATEWAY_LOG_LEVEL']) ?? 'info';
const winstonLogger = createWinstonLogger(level);
const logger = new WinstonLogger(winstonLogger, { component: 'gateway', mode: 'development' });

async function exit(code: number): Promise<never> {
  await flushLogger(winstonLogger);
  process.exit(code);
}

process.on('unhandledRejection', (reason) => {
  logger.error('unhandled rejection', { error: reason instanceof Error ? reason.message : String(reason) });
});

let dev: DevGateway | undefined;
let signals = 0;

function onSignal(signal: NodeJS.Signals): void {
  signals += 1;
  if (signals > 1 || dev === undefined) {
    logger.error(signals > 1 ? 'second signal during shutdown: forcing exit' : 'signal during startup: exiting', { signal });
    void exit(1);
    return;
  }
  logger.info('signal received', { signal });
  void dev
    .shutdown()
    .then(() => exit(0))
    .catch(() => exit(1));
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

try {
  const telemetry = setupTelemetry(process.env);
  const { startDevGateway } = await import('./dev/dev-gateway.js');
  dev = await startDevGateway({ env: process.env, logger, telemetry });
} catch (error) {
  const reason =
    error instanceof ConfigError || (error instanceof Error && error.name === 'StartupError')
      ? error.message
      : `${error instanceof Error ? error.name : 'Error'}: ${error instanceof Error ? error.message : String(error)}`;
  logger.error('startup failed', { error: reason });
  await exit(1);
}

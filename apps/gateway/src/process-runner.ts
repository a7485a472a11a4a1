import { ConfigError } from './config/config-error.js';
import { WinstonLogger, createWinstonLogger, flushLogger } from './logging.js';
import { setupTelemetry, type Telemetry } from './telemetry.js';

/** What an entry point starts: something that can be shut down once. */
export interface Stoppable {
  shutdown(): Promise<unknown>;
  /** SIGHUP: re-read what can change without a restart (signer key). Without it SIGHUP shuts down. */
  reload?(): Promise<unknown>;
}

/**
 * The process shell shared by the binary and the development mode: JSON logger, telemetry,
 * SIGINT/SIGTERM handling (second signal forces exit 1), SIGHUP reload, one `startup failed` line and exit 1
 * when `start` throws, exit 0 after a clean shutdown.
 */
export async function runProcess(
  fields: Record<string, unknown>,
  start: (context: { logger: WinstonLogger; telemetry: Telemetry }) => Promise<Stoppable>,
): Promise<void> {
  const level = (['error', 'warn', 'info', 'debug'] as const).find((l) => l === process.env['GATEWAY_LOG_LEVEL']) ?? 'info';
  const winstonLogger = createWinstonLogger(level);
  const logger = new WinstonLogger(winstonLogger, { component: 'gateway', ...fields });

  const exit = async (code: number): Promise<never> => {
    await flushLogger(winstonLogger);
    process.exit(code);
  };

  // A closed log pipe must not take the gateway down with it: the lines are lost, serving goes on.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });

  process.on('unhandledRejection', (reason) => {
    logger.error('unhandled rejection', { error: reason instanceof Error ? reason.message : String(reason) });
  });

  let running: Stoppable | undefined;
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1 || running === undefined) {
      logger.error(signals > 1 ? 'second signal during shutdown: forcing exit' : 'signal during startup: exiting', { signal });
      void exit(1);
      return;
    }
    logger.info('signal received', { signal });
    void running
      .shutdown()
      .then(() => exit(0))
      .catch(() => exit(1));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', () => {
    if (running?.reload === undefined || signals > 0) {
      if (running !== undefined && signals === 0) onSignal('SIGHUP');
      else logger.warn('SIGHUP ignored', { reason: running === undefined ? 'still starting' : 'shutting down' });
      return;
    }
    logger.info('signal received', { signal: 'SIGHUP' });
    running.reload().catch((error: unknown) => {
      logger.error('reload failed', { error: error instanceof Error ? error.message : String(error) });
    });
  });

  try {
    running = await start({ logger, telemetry: await setupTelemetry(process.env) });
  } catch (error) {
    const reason =
      error instanceof ConfigError || (error instanceof Error && (error.name === 'StartupError' || error.name === 'TlsFilesError'))
        ? error.message
        : `${error instanceof Error ? error.name : 'Error'}: ${error instanceof Error ? error.message : String(error)}`;
    // Every problem of the configuration is in `error`; `variables` lists their names for jq.
    const variables = error instanceof ConfigError ? { variables: error.problems.map((p) => p.variable) } : {};
    logger.error('startup failed', { error: reason, ...variables });
    await exit(1);
  }
}

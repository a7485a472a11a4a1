import { LOG_LEVELS, WinstonLogger, createWinstonLogger, flushLogger } from './logging.js';
import { setupTelemetry, type Telemetry, type TelemetryOptions } from './telemetry.js';

/** What an entry point starts: something that can be shut down once. */
export interface Stoppable {
  /** SIGINT/SIGTERM (or SIGHUP without `reload`): stop; the process exits 0 when it resolves, 1 when it rejects. */
  shutdown(): Promise<unknown>;
  /** SIGHUP: re-read what can change without a restart (signer key). Without it SIGHUP shuts down. */
  reload?(): Promise<unknown>;
}

/** Options of {@link runProcess}. */
export interface RunProcessOptions {
  /**
   * `name`s of the errors whose message alone is the `startup failed` line's `error` (written for
   * the operator, e.g. a configuration error); any other error is logged as `<name>: <message>`.
   * An error with a `problems` array (each naming a `variable`) also gets `variables`.
   */
  readonly operatorErrors?: readonly string[];
  /** Passed to {@link setupTelemetry} (instrumentations to register when tracing). */
  readonly telemetry?: TelemetryOptions;
}

/** The `variable` of each of an error's `problems`, when it has them (a configuration error). */
function problemVariables(error: unknown): string[] | undefined {
  const problems = error instanceof Error ? (error as { problems?: unknown }).problems : undefined;
  if (!Array.isArray(problems)) return undefined;
  return problems.flatMap((p: unknown) => (typeof p === 'object' && p !== null && typeof (p as { variable?: unknown }).variable === 'string' ? [(p as { variable: string }).variable] : []));
}

/**
 * The process shell shared by the binary and the development mode: JSON logger, telemetry,
 * SIGINT/SIGTERM handling (second signal forces exit 1), SIGHUP reload, one `startup failed` line and exit 1
 * when `start` throws, exit 0 after a clean shutdown.
 */
export async function runProcess(
  fields: Record<string, unknown>,
  start: (context: { logger: WinstonLogger; telemetry: Telemetry }) => Promise<Stoppable>,
  options: RunProcessOptions = {},
): Promise<void> {
  const level = LOG_LEVELS.find((l) => l === process.env['GATEWAY_LOG_LEVEL']) ?? 'info';
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
    running = await start({ logger, telemetry: await setupTelemetry(process.env, undefined, options.telemetry) });
  } catch (error) {
    const reason =
      error instanceof Error && (options.operatorErrors ?? []).includes(error.name)
        ? error.message
        : `${error instanceof Error ? error.name : 'Error'}: ${error instanceof Error ? error.message : String(error)}`;
    // Every problem of the configuration is in `error`; `variables` lists their names for jq.
    const names = problemVariables(error);
    const variables = names !== undefined ? { variables: names } : {};
    logger.error('startup failed', { error: reason, ...variables });
    await exit(1);
  }
}

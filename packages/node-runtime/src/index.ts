/**
 * `@edge-gateway/node-runtime`: what a Node binary embedding the gateway needs around the core:
 * JSON logging through winston, OpenTelemetry setup, the descriptor-limit check and the
 * signal-driven process lifecycle, and the environment settings table (one row per variable).
 *
 * @packageDocumentation
 */
export {
  BatchedStreamTransport,
  LOG_FIELD_MAX_CHARS,
  LOG_FLUSH_DELAY_MS,
  LOG_FLUSH_MAX_PENDING,
  LOG_LEVELS,
  WinstonLogger,
  createWinstonLogger,
  flatJson,
  flushLogger,
  formatLine,
  type LogLevel,
} from './logging.js';
export { TELEMETRY_FLUSH_TIMEOUT_MS, setupTelemetry, type Telemetry, type TelemetryEnv, type TelemetryOptions, type TelemetryShutdownOptions } from './telemetry.js';
export {
  ASSUMED_OPEN_FILE_LIMIT,
  DEFAULT_CONNECTION_SHARE,
  DESCRIPTOR_RESERVE,
  MaxConnectionsError,
  maxConnectionsFor,
  parseProcLimits,
  parseUlimit,
  readOpenFileLimit,
  type OpenFileLimit,
} from './open-file-limit.js';
export { runProcess, type RunProcessOptions, type Stoppable } from './process-runner.js';
export { formatDuration, parseGoDuration } from './duration.js';
export {
  ConfigError,
  InvalidSetting,
  REQUIRED,
  SettingsReading,
  defaultValue,
  mayCarryCredentials,
  parseHostPort,
  parsers,
  put,
  quoteValue,
  readSettings,
  throwProblems,
  type ConfigProblem,
  type Described,
  type HostPort,
  type SameAs,
  type Setting,
  type SettingParser,
  type SettingPath,
  type SettingsEnv,
  type SettingsResult,
} from './settings.js';

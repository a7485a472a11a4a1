export { loadConfig, ConfigError, DEPRECATED_VARIABLES, parseHostPort, describeConfig, type GatewayConfig, type HostPort, type LogLevel } from './config/config.js';
export { parseGoDuration, formatDuration } from './config/duration.js';
export { startGateway, StartupError, type RunningGateway, type StartOptions } from './gateway.js';
export { runShutdown, withBudget, type ShutdownStep } from './lifecycle.js';
export { createWinstonLogger, WinstonLogger, flushLogger } from './logging.js';
export { setupTelemetry, type Telemetry } from './telemetry.js';

export { loadConfig, ConfigError, DEPRECATED_VARIABLES, parseHostPort, describeConfig, type GatewayConfig, type HostPort, type LogLevel } from './config/config.js';
export { parseGoDuration, formatDuration } from './config/duration.js';
export { startGateway, StartupError, type RunningGateway, type StartOptions } from './gateway.js';
// The shutdown runner moved into the core (composition root); re-exported for existing callers.
export { runShutdown, withBudget, type ShutdownStep } from '@edge-gateway/core';
// The logger, telemetry and process runner live in @edge-gateway/node-runtime; re-exported for existing callers.
export { createWinstonLogger, WinstonLogger, flushLogger, TELEMETRY_FLUSH_TIMEOUT_MS, setupTelemetry, type Telemetry, type TelemetryShutdownOptions } from '@edge-gateway/node-runtime';
export { processOptions } from './process-options.js';

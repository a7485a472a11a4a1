/**
 * `@edge-gateway/adapters-ws`: the EdgeGateway protocol over WebSocket (SPEC §2.2), a thin
 * mapping onto the core's `execute` and `openStream`.
 *
 * @packageDocumentation
 */
export {
  DEFAULT_BUFFER_HIGH_WATER_BYTES,
  DEFAULT_HTTP_TIMEOUTS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CALLS_IN_FLIGHT,
  DEFAULT_PING_INTERVAL_MS,
  FRAME_HEADROOM_BYTES,
  startWebSocketServer,
  type WebSocketServerHandle,
  type WebSocketServerOptions,
} from './websocket-server.js';
export { statusCodeFor, toCallStatus } from './status-mapping.js';

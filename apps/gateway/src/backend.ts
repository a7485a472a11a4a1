/**
 * Where sessions, replay reservations and the two event streams live. The binary uses Redis;
 * the development mode (`npm run dev`) uses the core's in-memory adapters.
 */
export interface GatewayBackend {
  /** Human-readable kind for logs: `redis` or `memory`. */
  readonly kind: string;
  /** Startup step 3: open connections and prove they work (one bounded PING for Redis). */
  connect(): Promise<void>;
  /** Closes connections (last shutdown steps). */
  close(): Promise<void>;
}

/** A stream subscriber: hands entries of one stream to a core handler until closed. */
export interface EventSource {
  start(): Promise<void>;
  close(): Promise<void>;
}

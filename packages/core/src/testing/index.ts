export * from './fake-clock.js';
export * from './in-memory-session-store.js';
export * from './in-memory-replay-store.js';
export * from './in-memory-event-stream.js';
export * from './contracts.js';

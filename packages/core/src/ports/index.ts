export * from './auth-upstream.port.js';
export * from './clock.port.js';
export * from './command-router.port.js';
export * from './event-history.port.js';
export * from './logger.port.js';
export * from './replay-store.port.js';
export * from './response-signer.port.js';
export * from './session-store.port.js';

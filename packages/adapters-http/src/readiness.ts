/**
 * Process-local readiness reported by `GET /readyz` (SPEC §6): `starting` until startup
 * finished, `ready` while serving, `shutting_down` from the moment shutdown begins.
 */
export type Readiness = 'starting' | 'ready' | 'shutting_down';

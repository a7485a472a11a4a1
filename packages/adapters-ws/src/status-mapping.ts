// The one error -> status mapping lives in core (SPEC §2.2 status frames carry its codes).
export { statusCodeFor, toCallStatus } from '@edge-gateway/core';

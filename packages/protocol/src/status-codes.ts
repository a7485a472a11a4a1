/** The gRPC status codes the gateway uses (SPEC §4), the same numbers on every transport. */
export const StatusCodes = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof StatusCodes)[keyof typeof StatusCodes];

/** Index: code number; built once, so naming a status (per call, for metrics) allocates nothing. */
const STATUS_NAMES: readonly string[] = Object.entries(StatusCodes).reduce<string[]>((names, [name, value]) => ((names[value] = name), names), []);

/** `FAILED_PRECONDITION` for 9; the number as text for an unknown code. */
export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}

/** A call ended with a non-OK status (SPEC §4): the same code and message on every transport. */
export class GatewayStatusError extends Error {
  override readonly name = 'GatewayStatusError';
  /** Numeric status code, e.g. `9` for FAILED_PRECONDITION. */
  readonly code: number;
  /** Status name, e.g. `FAILED_PRECONDITION`. */
  readonly codeName: string;
  /** The status message, e.g. `device session is revoked`. */
  readonly details: string;

  constructor(code: number, details: string, options?: { cause?: unknown }) {
    const codeName = statusName(code);
    super(`${codeName}: ${details}`, options);
    this.code = code;
    this.codeName = codeName;
    this.details = details;
  }
}

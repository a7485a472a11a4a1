/** Body of `POST /api/v1/public/auth/send-email-code`. */
export interface SendEmailCodeRequest {
  readonly email: string;
}
export interface SendEmailCodeResponse {
  readonly challenge_id: string;
}

/** Body of `POST /api/v1/public/auth/confirm-email-code`. */
export interface ConfirmEmailCodeRequest {
  readonly challenge_id: string;
  readonly code: string;
  readonly client_public_key: string;
}
export interface ConfirmEmailCodeResponse {
  readonly device_session_id: string;
  readonly user_id: string;
}

/** Why an auth upstream call failed (SPEC §6). */
export type AuthUpstreamFailure =
  | { readonly kind: 'unreachable' }
  | { readonly kind: 'timeout' }
  /** The upstream answered 4xx with an error envelope: passed through as is. */
  | { readonly kind: 'rejected'; readonly status: number; readonly code: string; readonly message: string }
  /** Anything else: 5xx, a malformed answer, a 200 of the wrong shape. */
  | { readonly kind: 'bad_response'; readonly detail: string };

export class AuthUpstreamError extends Error {
  override readonly name = 'AuthUpstreamError';
  /** Always `auth_upstream_failed`; {@link AuthUpstreamError.failure} says how. */
  readonly code = 'auth_upstream_failed';
  constructor(
    readonly failure: AuthUpstreamFailure,
    options?: { cause?: unknown },
  ) {
    super(`auth upstream failed: ${failure.kind}`, options);
  }
}

/** The auth/session service behind the public auth routes. Rejects with `AuthUpstreamError`. */
export interface AuthUpstream {
  sendEmailCode(request: SendEmailCodeRequest, signal?: AbortSignal): Promise<SendEmailCodeResponse>;
  confirmEmailCode(request: ConfirmEmailCodeRequest, signal?: AbortSignal): Promise<ConfirmEmailCodeResponse>;
}

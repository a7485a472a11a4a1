/** The paths of the public listener (SPEC §6). */
export const PublicRoutes = {
  healthz: '/healthz',
  readyz: '/readyz',
  sendEmailCode: '/api/v1/public/auth/send-email-code',
  confirmEmailCode: '/api/v1/public/auth/confirm-email-code',
} as const;

import { readFile } from 'node:fs/promises';
import { Ed25519ResponseSigner, KeyFormatError } from '@edge-gateway/core';

const VARIABLE = 'GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH';

/** The signer key could not be loaded; `message` names the variable and never holds key material. */
export class SignerKeyError extends Error {
  override readonly name = 'SignerKeyError';
}

/** Reads and parses the PKCS#8 PEM Ed25519 signer key (startup step 2, and `doctor`). */
export async function loadSignerKey(path: string): Promise<Ed25519ResponseSigner> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new SignerKeyError(`${VARIABLE}: cannot read signer key file ${path} (${code})`);
  }
  try {
    return Ed25519ResponseSigner.fromPem(pem);
  } catch (error) {
    if (error instanceof KeyFormatError) throw new SignerKeyError(`${VARIABLE}: ${error.message}`);
    throw error;
  }
}

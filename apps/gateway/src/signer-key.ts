import { Ed25519ResponseSigner, KeyFormatError } from '@edge-gateway/core';
import { BoundedFileError, readBoundedFile } from '@edge-gateway/core/node';

const VARIABLE = 'GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH';

/** The signer key could not be loaded; `message` names the variable and never holds key material. */
export class SignerKeyError extends Error {
  override readonly name = 'SignerKeyError';
}

/**
 * Reads and parses the PKCS#8 PEM Ed25519 signer key (startup step 2, SIGHUP, and `doctor`): a
 * regular file of at most 1 MiB read within a time bound (`readBoundedFile`).
 */
export async function loadSignerKey(path: string): Promise<Ed25519ResponseSigner> {
  let pem: Buffer;
  try {
    pem = await readBoundedFile(path);
  } catch (error) {
    if (!(error instanceof BoundedFileError)) throw error;
    throw new SignerKeyError(`${VARIABLE}: ${error.message.replace(/^cannot read /, 'cannot read signer key file ')}`);
  }
  try {
    return Ed25519ResponseSigner.fromPem(pem);
  } catch (error) {
    if (error instanceof KeyFormatError) throw new SignerKeyError(`${VARIABLE}: ${error.message}`);
    throw error;
  }
}

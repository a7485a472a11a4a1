import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateEd25519Key, type GeneratedEd25519Key } from '@edge-gateway/core';

/** The demo device session the development mode creates (SPEC §5.1 record fields). */
export const DEMO_DEVICE = { deviceSessionId: 'demo-device', userId: 'demo-user' } as const;

/** File names inside the development folder. */
export const DevFileNames = {
  signerKey: 'signer.pem',
  gatewayPublicKey: 'gateway-public-key.b64',
  demoDeviceKey: 'demo-device.pem',
  /** Bound addresses of the running development gateway, for the demo and tools. */
  running: 'dev-gateway.json',
} as const;

/** What the running development gateway writes to `dev-gateway.json`. */
export interface DevGatewayInfo {
  readonly pid: number;
  readonly public_http_addr: string;
  readonly authenticated_grpc_addr: string;
  readonly admin_http_addr: string;
  readonly signer_key_id: string;
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * The git-ignored development folder: `GATEWAY_DEV_DIR`, or `.dev/` at the repository root
 * (resolved from this file, so it does not depend on the working directory).
 */
export function devDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const configured = env['GATEWAY_DEV_DIR']?.trim();
  return configured === undefined || configured === '' ? join(REPO_ROOT, '.dev') : resolve(configured);
}

/** Paths of the files in a development folder. */
export function devPaths(dir: string) {
  return {
    dir,
    signerKey: join(dir, DevFileNames.signerKey),
    gatewayPublicKey: join(dir, DevFileNames.gatewayPublicKey),
    demoDeviceKey: join(dir, DevFileNames.demoDeviceKey),
    running: join(dir, DevFileNames.running),
  };
}

/** Writes a secret file readable by the owner only (mode 0600, replacing any old file). */
export function writeSecretFile(path: string, content: string): void {
  rmSync(path, { force: true });
  writeFileSync(path, content, { mode: 0o600, flag: 'wx' });
}

/** The keys of one development run, written to the development folder. */
export interface DevKeys {
  readonly paths: ReturnType<typeof devPaths>;
  readonly signer: GeneratedEd25519Key;
  readonly demoDevice: GeneratedEd25519Key;
}

/**
 * Creates the development folder (0700) and writes a fresh signer key, its raw public key
 * (base64) and a fresh demo-device key. Every run starts with new keys: nothing is kept.
 */
export function writeDevKeys(dir: string): DevKeys {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const paths = devPaths(dir);
  const signer = generateEd25519Key();
  const demoDevice = generateEd25519Key();
  writeSecretFile(paths.signerKey, signer.pem);
  writeFileSync(paths.gatewayPublicKey, `${signer.publicKeyRaw.toString('base64')}\n`);
  writeSecretFile(paths.demoDeviceKey, demoDevice.pem);
  rmSync(paths.running, { force: true });
  return { paths, signer, demoDevice };
}

/** Reads `dev-gateway.json` of a running development gateway, if there is one. */
export function readRunningDevGateway(dir: string): DevGatewayInfo | undefined {
  try {
    return JSON.parse(readFileSync(devPaths(dir).running, 'utf8')) as DevGatewayInfo;
  } catch {
    return undefined;
  }
}

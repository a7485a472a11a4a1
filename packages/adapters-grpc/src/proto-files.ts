import { fileURLToPath } from 'node:url';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

/** Directory of the `.proto` files shipped with this package (`proto/`, beside `src/` and `dist/`). */
export const protoDir: string = fileURLToPath(new URL('../proto/', import.meta.url));

/** The proto files of this package, relative to {@link protoDir}. */
export const ProtoFiles = {
  edgeGateway: 'edgegateway/v1/edge_gateway.proto',
  commandHandler: 'edgegateway/downstream/v1/command_handler.proto',
} as const;

const loadOptions = { keepCase: true, longs: Number, bytes: Buffer, defaults: true } as const;

/**
 * The descriptor set server reflection serves: the public EdgeGateway API and the health
 * service (the downstream contract is not served by the gateway, so it is not listed).
 */
export function loadReflectionDescriptor(): PackageDefinition {
  return {
    ...loadSync(ProtoFiles.edgeGateway, { ...loadOptions, includeDirs: [protoDir] }),
    ...loadSync(healthProtoPath, loadOptions),
  };
}

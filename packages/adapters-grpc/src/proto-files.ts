import { fileURLToPath } from 'node:url';
import type { PackageDefinition } from '@grpc/proto-loader';
import { reflectionFileDescriptors } from './generated/reflection-descriptors.js';

/** Directory of the `.proto` files shipped with this package (`proto/`, beside `src/` and `dist/`). */
export const protoDir: string = fileURLToPath(new URL('../proto/', import.meta.url));

/** The proto files of this package, relative to {@link protoDir}. */
export const ProtoFiles = {
  edgeGateway: 'edgegateway/v1/edge_gateway.proto',
  commandHandler: 'edgegateway/downstream/v1/command_handler.proto',
} as const;

/**
 * The descriptor set server reflection serves: the public EdgeGateway API and the health
 * service (the downstream contract is not served by the gateway, so it is not listed).
 *
 * The files are the ones `buf build` compiled at `npm run gen` time, not protobufjs's
 * re-encoding of the `.proto` sources: protobufjs names map entry types after the field
 * (`Statuses` instead of `StatusesEntry`) and Go-based tools (`buf curl`, grpcurl) then refuse
 * the whole health file. `@grpc/reflection` only reads `fileDescriptorProtos` of each entry.
 */
export function loadReflectionDescriptor(): PackageDefinition {
  const definition: Record<string, { fileDescriptorProtos: Buffer[] }> = {};
  reflectionFileDescriptors.forEach((encoded, index) => {
    definition[`file${index}`] = { fileDescriptorProtos: [Buffer.from(encoded, 'base64')] };
  });
  // Typed as proto-loader's definition for ReflectionService, which reads nothing else.
  return definition as unknown as PackageDefinition;
}

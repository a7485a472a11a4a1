// Hand-written barrel over the ts-proto output (the only non-generated file in this folder;
// reflection-descriptors.ts, also generated, is used by proto-files.ts and not re-exported).
// Regenerate the rest with `npm run gen`; `npm run gen:check` fails when it is stale.
export {
  EdgeGatewayClient,
  EdgeGatewayService,
  ExecuteCommandRequest,
  ExecuteCommandResponse,
  GatewayEvent,
  ServerTime,
  SubscribeEventsRequest,
  type EdgeGatewayServer,
} from './edgegateway/v1/edge_gateway.js';
export {
  CommandHandlerClient,
  CommandHandlerService,
  DownstreamCommand,
  DownstreamResult,
  type CommandHandlerServer,
} from './edgegateway/downstream/v1/command_handler.js';

/**
 * Example: a business service behind the gateway, implementing the downstream
 * `CommandHandler` contract (packages/adapters-grpc/proto/edgegateway/downstream/v1/
 * command_handler.proto, SPEC §2).
 *
 * The gateway has already checked everything about the caller before it calls `Execute`:
 * field rules, freshness, the session (active, not revoked), the device's signature and
 * replay. So `user_id` and `device_session_id` can be trusted as the authenticated caller;
 * the payload is the device's bytes and must be validated like any input. The gateway signs
 * whatever this service returns.
 *
 * Outcomes are result codes, not gRPC errors: a gRPC error other than UNAVAILABLE or
 * DEADLINE_EXCEEDED reaches the device only as INTERNAL "downstream command failed" (SPEC §4),
 * so "invalid", "not_found" and the like travel as `result_code` with a payload.
 *
 *   ORDERS_SERVICE_ADDR=127.0.0.1:50051 node examples/dist/orders-service.js
 *
 * and route its message types to it on the gateway:
 *   GATEWAY_DOWNSTREAM_ROUTES=orders.=127.0.0.1:50051
 */
import { randomUUID } from 'node:crypto';
import { Server, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { CommandHandlerService, type DownstreamCommand, type DownstreamResult } from '@edge-gateway/adapters-grpc/generated';
import { isMain } from './run-main.js';

/** An order as this example keeps it (in memory; a real service has a database). */
interface Order {
  readonly orderId: string;
  readonly userId: string;
  readonly sku: string;
  readonly quantity: number;
}

/** Largest payload this service parses (the gateway already bounds it by GATEWAY_MAX_PAYLOAD_BYTES). */
const MAX_PAYLOAD_BYTES = 4096;

function reply(resultCode: string, body: unknown): DownstreamResult {
  return { resultCode, payload: Buffer.from(JSON.stringify(body)) };
}

function parseJson(payload: Uint8Array): Record<string, unknown> | undefined {
  if (payload.length > MAX_PAYLOAD_BYTES) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(payload).toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The orders domain: `orders.create` and `orders.get`, scoped to the calling user. */
export class OrdersHandler {
  private readonly orders = new Map<string, Order>();

  handle(command: DownstreamCommand): DownstreamResult {
    const body = parseJson(command.payload);
    if (body === undefined) return reply('invalid', { error: 'payload must be a JSON object' });
    switch (command.messageType) {
      case 'orders.create': {
        const { sku, quantity } = body;
        if (typeof sku !== 'string' || !/^[A-Z0-9-]{1,32}$/.test(sku)) return reply('invalid', { error: 'sku must be 1-32 of [A-Z0-9-]' });
        if (!Number.isInteger(quantity) || (quantity as number) < 1 || (quantity as number) > 100) return reply('invalid', { error: 'quantity must be 1-100' });
        const order: Order = { orderId: `ord-${randomUUID()}`, userId: command.userId, sku, quantity: quantity as number };
        this.orders.set(order.orderId, order);
        return reply('created', { order_id: order.orderId, sku, quantity });
      }
      case 'orders.get': {
        const order = typeof body['order_id'] === 'string' ? this.orders.get(body['order_id']) : undefined;
        // Another user's order is "not found", never "forbidden": its existence is not revealed.
        if (order === undefined || order.userId !== command.userId) return reply('not_found', { error: 'no such order' });
        return reply('ok', { order_id: order.orderId, sku: order.sku, quantity: order.quantity });
      }
      default:
        // The gateway routes by prefix ("orders."), so unknown types under it end here.
        return reply('unknown_message_type', { error: `unknown message type ${command.messageType}` });
    }
  }
}

/** A running orders service. */
export interface OrdersService {
  /** The bound `host:port`. */
  readonly address: string;
  /** Stops accepting calls and lets in-flight ones finish. */
  stop(): Promise<void>;
}

/** Starts the gRPC `CommandHandler` server on `address` (`host:port`, port 0 for any). */
export async function startOrdersService(address: string, handler = new OrdersHandler()): Promise<OrdersService> {
  const server = new Server();
  server.addService(CommandHandlerService, {
    execute(call: ServerUnaryCall<DownstreamCommand, DownstreamResult>, callback: sendUnaryData<DownstreamResult>) {
      try {
        callback(null, handler.handle(call.request));
      } catch (error) {
        // Reaches the device as INTERNAL "downstream command failed"; the detail stays here.
        console.error('orders: command failed', error);
        callback({ code: status.INTERNAL, details: 'internal error' });
      }
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  const host = address.slice(0, address.lastIndexOf(':'));
  return {
    address: `${host}:${port}`,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

if (isMain(import.meta.url)) {
  const service = await startOrdersService(process.env['ORDERS_SERVICE_ADDR'] ?? '127.0.0.1:50051');
  process.stdout.write(`orders service listening on ${service.address}\n`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void service.stop().then(() => process.exit(0)));
  }
}

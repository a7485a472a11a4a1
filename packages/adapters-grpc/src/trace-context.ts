import type { Metadata } from '@grpc/grpc-js';
import { type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';

/** Reads W3C trace context (`traceparent`, `tracestate`) from incoming gRPC metadata. */
export const metadataGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => Object.keys(carrier.getMap()),
  get: (carrier, key) => {
    const values = carrier.get(key).filter((v): v is string => typeof v === 'string');
    if (values.length === 0) return undefined;
    return values.length === 1 ? values[0] : values;
  },
};

/** Writes W3C trace context into outgoing gRPC metadata. */
export const metadataSetter: TextMapSetter<Metadata> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

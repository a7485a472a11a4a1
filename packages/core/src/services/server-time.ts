// The `edgegateway.v1.ServerTime` codec lives in the transport-free protocol package, shared
// with the device SDKs that decode it; the core only encodes the bootstrap payload.
export { encodeServerTime } from '@edge-gateway/protocol';

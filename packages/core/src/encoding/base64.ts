// The strict, allocation-free base64 checks live in protocol (shared with the device SDKs).
export { base64DecodedLength, isStandardBase64 } from '@edge-gateway/protocol';

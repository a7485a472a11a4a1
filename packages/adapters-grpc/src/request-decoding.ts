/*
 * grpc-js answers a request it cannot decode with INTERNAL "Error deserializing request" and
 * never calls the handler, so the call is not counted either. The service definition wraps
 * the request decoders instead: a message that does not decode (bad varint, truncated field,
 * an int64 beyond ±2^53) becomes one marker object the handlers answer INVALID_ARGUMENT
 * `malformed request message`, counted like any other call (issue 12).
 */

const MALFORMED: unique symbol = Symbol('malformed request message');

/** The one object a failed decode turns into. */
const malformedMessage = Object.freeze({ [MALFORMED]: true });

/** `decode`, except that a message it cannot decode becomes the malformed marker (never throws). */
export function tolerantDecoder<T>(decode: (bytes: Buffer) => T): (bytes: Buffer) => T {
  return (bytes) => {
    try {
      return decode(bytes);
    } catch {
      return malformedMessage as unknown as T;
    }
  };
}

/** True when `message` is the marker of a request that could not be decoded. */
export function isMalformedMessage(message: unknown): boolean {
  return message === malformedMessage;
}

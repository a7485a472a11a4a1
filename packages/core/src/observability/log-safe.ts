import type { LogFields } from '../ports/logger.port.js';

/** Characters of an invalid client string that reach a log line (issue 12). */
export const LOG_PREVIEW_CHARS = 64;

/** Longest free-text value (an error description, a reason) the core puts in a log line. */
export const LOG_TEXT_MAX_CHARS = 512;

/**
 * A client-supplied string as a log field. A value that passed its field rule is logged as
 * is; anything else as its first {@link LOG_PREVIEW_CHARS} characters plus `<name>_length`,
 * so a 1 MB `request_id` costs a few dozen bytes of log, not a megabyte.
 */
export function clientField(name: string, value: string, valid: boolean): LogFields {
  const fields: LogFields = {};
  addClientField(fields, name, value, valid);
  return fields;
}

/** {@link clientField} written into `fields` (no intermediate object on the hot path). */
export function addClientField(fields: LogFields, name: string, value: string, valid: boolean): void {
  if (valid) {
    fields[name] = value;
    return;
  }
  fields[name] = value.slice(0, LOG_PREVIEW_CHARS);
  fields[`${name}_length`] = value.length;
}

/** Free text (error messages, downstream details) cut to {@link LOG_TEXT_MAX_CHARS} characters. */
export function boundedText(text: string): string {
  return text.length <= LOG_TEXT_MAX_CHARS ? text : `${text.slice(0, LOG_TEXT_MAX_CHARS)}… (${text.length} chars)`;
}

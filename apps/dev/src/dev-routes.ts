import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseClientEvent, parseSessionFields, type RawFields } from '@edge-gateway/core';
import type { InMemoryBackend } from './in-memory-backend.js';

/** Largest accepted request body, as on the public listener. */
const MAX_BODY_BYTES = 64 * 1024;

/** The development-only routes (documented in docs/cli.md). */
export const DEV_ROUTES = [
  'POST /dev/events',
  'POST /dev/sessions',
  'GET /dev/sessions/:id',
  'POST /dev/sessions/:id/revoke',
] as const;

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJsonObject(req: IncomingMessage): Promise<Record<string, string>> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) throw new HttpProblem(415, 'unsupported_media_type', 'body must be application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpProblem(413, 'payload_too_large', `body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpProblem(400, 'invalid_request', 'body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpProblem(400, 'invalid_request', 'body must be a JSON object');
  }
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) {
    if (typeof value !== 'string') throw new HttpProblem(400, 'invalid_request', `${name}: must be a string`);
    fields[name] = value;
  }
  return fields;
}

function pick(fields: Record<string, string>, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) if (fields[name] !== undefined) out[name] = fields[name];
  return out;
}

/**
 * A request handler for the development routes on the dev admin listener. It plays the auth
 * service (session records + snapshots) and the event publishers (client-events entries)
 * against the in-memory backend. Returns false when the path is not a dev route.
 *
 * - `POST /dev/events` `{user_id, device_session_id?, event_type, payload_base64}` appends the
 *   entry as given (malformed ones too, so the drop path can be tried) and answers
 *   `201 {entry_id, well_formed, reason?}`.
 * - `POST /dev/sessions` `{device_session_id, user_id, client_public_key}` writes an active
 *   record and snapshot: `201 {device_session_id, status, snapshot_id}`.
 * - `GET /dev/sessions/:id` answers the record: `200 {record, well_formed, reason?}` or `404`.
 * - `POST /dev/sessions/:id/revoke` writes the revoked record and snapshot: `200 {…, snapshot_id}`.
 */
export function createDevRoutes(backend: InMemoryBackend): (req: IncomingMessage, res: ServerResponse) => boolean {
  const handle = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const method = req.method ?? 'GET';
    if (path === '/dev/events') {
      if (method !== 'POST') throw new HttpProblem(405, 'method_not_allowed', 'use POST');
      const fields = pick(await readJsonObject(req), ['user_id', 'device_session_id', 'event_type', 'payload_base64']);
      const entryId = backend.publish(fields);
      const parsed = parseClientEvent({ id: entryId, fields });
      send(res, 201, { entry_id: entryId, well_formed: parsed.ok, ...(parsed.ok ? {} : { reason: parsed.reason }) });
      return;
    }
    if (path === '/dev/sessions') {
      if (method !== 'POST') throw new HttpProblem(405, 'method_not_allowed', 'use POST');
      const body = await readJsonObject(req);
      const fields: RawFields = { ...pick(body, ['device_session_id', 'user_id', 'client_public_key']), status: 'active' };
      const parsed = parseSessionFields(fields);
      if (!parsed.ok) throw new HttpProblem(400, 'invalid_request', parsed.reason);
      const snapshotId = backend.writeSession(fields);
      send(res, 201, { device_session_id: parsed.session.deviceSessionId, status: 'active', snapshot_id: snapshotId });
      return;
    }
    const match = /^\/dev\/sessions\/([^/]+)(\/revoke)?$/.exec(path);
    if (match !== null) {
      const id = decodeURIComponent(match[1] as string);
      const record = await backend.getSession(id);
      if (match[2] === undefined) {
        if (method !== 'GET') throw new HttpProblem(405, 'method_not_allowed', 'use GET');
        if (record === undefined) throw new HttpProblem(404, 'not_found', `no session record for ${id}`);
        const parsed = parseSessionFields(record);
        send(res, 200, { record, well_formed: parsed.ok, ...(parsed.ok ? {} : { reason: parsed.reason }) });
        return;
      }
      if (method !== 'POST') throw new HttpProblem(405, 'method_not_allowed', 'use POST');
      if (record === undefined) throw new HttpProblem(404, 'not_found', `no session record for ${id}`);
      const revoked: RawFields = { ...record, status: 'revoked', revoked_at_ms: String(Date.now()) };
      const snapshotId = backend.writeSession(revoked);
      send(res, 200, { device_session_id: id, status: 'revoked', revoked_at_ms: revoked['revoked_at_ms'], snapshot_id: snapshotId });
      return;
    }
    throw new HttpProblem(404, 'not_found', `no dev route ${method} ${path}`);
  };

  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://dev').pathname;
    if (path !== '/dev' && !path.startsWith('/dev/')) return false;
    handle(req, res, path).catch((error: unknown) => {
      const problem =
        error instanceof HttpProblem ? error : new HttpProblem(500, 'internal', error instanceof Error ? error.message : String(error));
      if (!res.headersSent) send(res, problem.status, { error: { code: problem.code, message: problem.message } });
      else res.destroy();
    });
    return true;
  };
}

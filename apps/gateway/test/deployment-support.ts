import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '@edge-gateway/test-utils/gateway-process';

export const DEPLOY = join(REPO_ROOT, 'deploy');

/** A Kubernetes object as parsed from YAML (only the fields the checks read are typed). */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> } } & Record<string, unknown>;

/** Every YAML document of `deploy/kubernetes/<file>`, failing on any YAML error or warning. */
export function readManifests(file: string): K8sObject[] {
  const text = readFileSync(join(DEPLOY, 'kubernetes', file), 'utf8');
  return parseAllDocuments(text).map((doc, index) => {
    if (doc.errors.length > 0 || doc.warnings.length > 0) {
      throw new Error(`${file} document ${index + 1}: ${[...doc.errors, ...doc.warnings].map((e) => e.message).join('; ')}`);
    }
    return doc.toJS() as K8sObject;
  });
}

/** File names in `deploy/kubernetes`. */
export function manifestFiles(): string[] {
  return readdirSync(join(DEPLOY, 'kubernetes')).filter((f) => f.endsWith('.yaml')).sort();
}

/** `KEY=value` lines of an env file (comments and blank lines skipped). */
export function readEnvFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match !== null) out[match[1] as string] = match[2] as string;
  }
  return out;
}

/** Instructions of a Dockerfile as `[INSTRUCTION, arguments]`, line continuations joined. */
export function dockerInstructions(text: string): Array<[string, string]> {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const space = l.indexOf(' ');
      return [l.slice(0, space).toUpperCase(), l.slice(space + 1).trim()];
    });
}

/** `[Section] Key=Value` entries of a systemd unit, in order (keys may repeat). */
export function unitEntries(text: string): Array<{ section: string; key: string; value: string }> {
  let section = '';
  const out: Array<{ section: string; key: string; value: string }> = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      section = header[1] as string;
      continue;
    }
    const eq = line.indexOf('=');
    out.push({ section, key: line.slice(0, eq), value: line.slice(eq + 1) });
  }
  return out;
}

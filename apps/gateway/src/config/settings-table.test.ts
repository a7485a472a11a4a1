import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GATEWAY_CORE_DEFAULTS } from '@edge-gateway/core';
import { describe, expect, it } from 'vitest';
import { DEPRECATED_VARIABLES, loadConfig, REQUIRED, SETTINGS, type Described, type SameAs, type Setting } from './config.js';
import { parseGoDuration } from './duration.js';

// The settings table of the binary (SETTINGS) against the two tables an operator reads: SPEC §7
// and the README's. Same variables in all three, same defaults.

const root = (path: string) => fileURLToPath(new URL(`../../../../${path}`, import.meta.url));

/** The rows of the first `| variable | default | notes |` table between `from` and `to`: variable → default cell. */
function docTable(path: string, from: RegExp, to: RegExp): Map<string, string> {
  const lines = readFileSync(root(path), 'utf8').split('\n');
  const start = lines.findIndex((l) => from.test(l));
  const end = lines.findIndex((l, i) => i > start && to.test(l));
  const rows = new Map<string, string>();
  for (const line of lines.slice(start, end)) {
    if (!line.startsWith('| `')) continue;
    // Cells are split on | not escaped as \|.
    const [variables = '', defaults = ''] = line.slice(1).split(/(?<!\\)\|/).map((cell) => cell.trim());
    const names = [...variables.matchAll(/`(GATEWAY_[A-Z0-9_]+)`/g)].map((m) => m[1] as string);
    // `A`, `B` | `30s`, `100000`: one default each; else one default for all.
    const parts = defaults.split(/,\s*/);
    names.forEach((name, i) => rows.set(name, parts.length === names.length ? (parts[i] as string) : defaults));
  }
  return rows;
}

/** Why `cell` (a default as the docs write it) does not say `setting.default`; undefined when it does. */
function disagreement(setting: Setting, cell: string): string | undefined {
  const plain = cell.replaceAll('`', '').trim();
  const d = setting.default;
  if (d === REQUIRED) return plain === 'required' ? undefined : 'the binary requires it';
  if (typeof d === 'object' && d !== null && 'doc' in d) {
    const { doc } = d as Described;
    return cell.includes(doc) ? undefined : `should say ${doc}`;
  }
  if (typeof d === 'object' && d !== null && 'sameAs' in d) {
    const { sameAs } = d as SameAs;
    return plain === sameAs ? undefined : `should be ${sameAs}`;
  }
  // "empty": nothing, none, off (an age of 0 is unlimited).
  if (/^empty\b/.test(plain)) return d === '' || d === 0 || (Array.isArray(d) && d.length === 0) ? undefined : `the binary's default is ${JSON.stringify(d)}`;
  if (typeof d === 'number') {
    const value = /^\d+$/.test(plain) ? Number(plain) : parseGoDuration(plain);
    return value === d ? undefined : `the binary's default is ${d}${/^\d+$/.test(plain) ? '' : ' ms'}`;
  }
  if (typeof d === 'boolean' || typeof d === 'string') return plain === String(d) ? undefined : `the binary's default is ${JSON.stringify(d)}`;
  if (typeof d === 'object' && d !== null && 'text' in d) return plain === d.text ? undefined : `the binary's default is ${String(d.text)}`;
  return `cannot compare the default ${JSON.stringify(d)}`;
}

const tables = {
  'docs/spec.md §7': docTable('docs/spec.md', /^## 7\. /, /^## 8\. /),
  'README.md': docTable('README.md', /^## Configuration/, /^## /),
};

describe.each(Object.entries(tables))('the settings table and %s', (name, doc) => {
  it('list the same variables', () => {
    expect(doc.size, `no table found in ${name}`).toBeGreaterThan(40);
    const binary = [...SETTINGS.map((s) => s.env), ...Object.keys(DEPRECATED_VARIABLES)].sort();
    expect([...doc.keys()].sort()).toEqual(binary);
  });

  it('give the same defaults', () => {
    const wrong = SETTINGS.flatMap((setting) => {
      const cell = doc.get(setting.env);
      const why = cell === undefined ? undefined : disagreement(setting, cell);
      return why === undefined ? [] : [`${setting.env}: ${name} says ${cell}, ${why}`];
    });
    expect(wrong).toEqual([]);
    for (const deprecated of Object.keys(DEPRECATED_VARIABLES)) expect(doc.get(deprecated)).toBe('—');
  });
});

describe('the settings table', () => {
  it('sets core options by their own names, one variable each', () => {
    const core = loadConfig({ GATEWAY_REDIS_MASTER_ADDR: 'r:6379', GATEWAY_REDIS_PASSWORD: 'p', GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: '/k' }).core;
    const options = [...Object.keys(GATEWAY_CORE_DEFAULTS).filter((k) => k !== 'asyncCrypto'), 'resumeMaxBytes'].sort();
    expect(Object.keys(core).sort()).toEqual(options);
    const targets = SETTINGS.map((s) => s.to);
    expect(new Set(targets).size).toBe(targets.length);
    expect(new Set(SETTINGS.map((s) => s.env)).size).toBe(SETTINGS.length);
  });

  it('a default that disagrees with the docs is found', () => {
    const row = SETTINGS.find((s) => s.env === 'GATEWAY_SHUTDOWN_TIMEOUT') as Setting;
    expect(disagreement(row, '`15s`')).toBeUndefined();
    expect(disagreement({ ...row, default: 10_000 }, '`15s`')).toBe("the binary's default is 10000 ms");
    expect(disagreement(SETTINGS.find((s) => s.env === 'GATEWAY_PUSH_MAX_EVENT_BYTES') as Setting, '`1048577`')).toBe("the binary's default is 1048576");
    expect(disagreement(SETTINGS.find((s) => s.env === 'GATEWAY_LOG_LEVEL') as Setting, '`warn`')).toBe('the binary\'s default is "info"');
  });
});

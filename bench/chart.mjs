// Generates docs/performance.svg (hand-rolled SVG, no packages) from bench/results/*.json:
// one row per target, the bar showing measured / target on a log scale (the dashed line is
// the target; right of it is met). When `<name>-before.json` exists, a thin grey bar shows the
// figure measured before the optimisations.
//
//   node bench/chart.mjs
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, readResult } from './lib.mjs';

/** Rows: [label, benchmark, pick(results) → number|undefined, target, 'max'|'min', unit]. */
const ROWS = [
  ['Commands: CPU per command ÷ intrinsic', 'command-cost', (r) => r.targets?.cpuPerCommandVsIntrinsic?.value, 1.1, 'max', '×', (r) => r.before?.cpuPerCommandVsIntrinsic],
  ['Commands: p99 at a fixed rate ÷ intrinsic', 'command-cost', (r) => r.targets?.p99VsIntrinsic?.value, 1.25, 'max', '×', (r) => r.before?.p99VsIntrinsic],
  ['Commands: closed loop (64) ÷ intrinsic', 'commands', (r) => r.ratios?.throughput, 0.9, 'min', '×', (r) => r.ratiosBefore?.throughput],
  ['Push: CPU per delivery ÷ intrinsic', 'push', (r) => r.targets?.cpuPerDeliveryVsIntrinsic?.value, 1.25, 'max', '×', (r) => r.targetsBefore?.cpuPerDeliveryVsIntrinsic?.value],
  ['Push: p99 at 30k/s, 10k streams', 'push', (r) => r.targets?.p99AtRate?.value, 50, 'max', ' ms', (r) => r.targetsBefore?.p99AtRate?.value],
  ['Push: 10k subscribe storm ÷ intrinsic', 'push', (r) => r.targets?.stormVsIntrinsic?.value, 1.5, 'max', '×', (r) => r.targetsBefore?.stormVsIntrinsic?.value],
  ['Fan-out: deliveries/s at p99 ≤ 100 ms', 'push', (r) => r.targets?.deliveries?.value?.deliveredPerSec ?? 0, 20_000, 'min', '/s', (r) => (r.targetsBefore ? r.targetsBefore.deliveries?.value?.deliveredPerSec ?? 0 : undefined)],
  ['Fan-out: RSS per idle stream', 'push', (r) => r.targets?.memoryPerIdleStream?.value, 16, 'max', ' KiB', (r) => r.targetsBefore?.memoryPerIdleStream?.value],
  ['Fan-out: 10k subscribe storm', 'push', (r) => r.targets?.subscribeStorm10k?.value, 5000, 'max', ' ms', (r) => (r.targetsBefore ? r.targetsBefore.subscribeStorm10k?.value ?? 'failed' : undefined)],
  ['Devices: CPU per delivery ÷ floor', 'device-scale', (r) => r.targets?.cpuPerDeliveryVsFloor?.value, 1.1, 'max', '×'],
  ['Devices: RSS per idle connection', 'device-scale', (r) => r.targets?.rssPerIdleConnection?.value, 20, 'max', ' KiB'],
  ['Devices: p99 at 12.5k/s with reconnects', 'device-scale', (r) => r.targets?.deliveries?.value?.p99Ms, 100, 'max', ' ms'],
  ['Devices: reconnect → bootstrap, p99', 'device-scale', (r) => r.targets?.reconnectToBootstrapP99?.value, 1000, 'max', ' ms'],
  ['Revocation: XADD → closed, p99', 'revocation', (r) => r.latencyMs?.p99, 50, 'max', ' ms'],
  ['Lifecycle: spawn → /readyz 200', 'lifecycle', (r) => r.targets?.startToReady?.value, 1000, 'max', ' ms'],
  ['Lifecycle: SIGTERM, 10k streams → exit', 'lifecycle', (r) => r.targets?.sigtermExit?.value, 2000, 'max', ' ms'],
  ['Soak: RSS growth after warm-up', 'soak', (r) => r.growthPercent, 10, 'max', ' %'],
];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function score(value, target, kind) {
  if (typeof value !== 'number' || Number.isNaN(value)) return undefined;
  if (kind === 'min') return value <= 0 ? 1 / 16 : value / target;
  return value <= 0 ? 16 : target / value;
}

function show(value, unit) {
  if (value === undefined || value === null) return 'n/a';
  if (typeof value === 'string') return value;
  const v = Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en-US') : Math.round(value * 100) / 100;
  return `${v}${unit}`;
}

/** Builds the SVG text from the stored results. */
export function renderChart() {
  const W = 1080;
  const labelW = 300;
  const barX = labelW + 10;
  const barW = 380;
  const rowH = 38;
  const top = 56;
  const H = top + ROWS.length * rowH + 40;
  // log2 scale from 1/16 to 16 of the target; the target sits in the middle.
  const x = (s) => barX + ((Math.log2(Math.min(16, Math.max(1 / 16, s))) + 4) / 8) * barW;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="13">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="12" y="24" font-size="16" font-weight="bold">edge-gateway benchmark targets (measured ÷ target, log scale; right of the dashed line = met)</text>`);
  const when = readResult('commands')?.noise?.before?.at ?? '';
  out.push(`<text x="12" y="44" fill="#555">${esc(`bench/results/*.json ${when ? `(${when.slice(0, 16).replace('T', ' ')} UTC)` : ''}; grey bar: before the optimisations; 2-core machine, see docs/performance.md for noise`)}</text>`);
  for (const tick of [1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8]) {
    const tx = x(tick);
    out.push(`<line x1="${tx}" y1="${top - 6}" x2="${tx}" y2="${top + ROWS.length * rowH}" stroke="${tick === 1 ? '#333' : '#e3e3e3'}" ${tick === 1 ? 'stroke-dasharray="5,4"' : ''}/>`);
    out.push(`<text x="${tx}" y="${top + ROWS.length * rowH + 16}" text-anchor="middle" fill="#666" font-size="11">${tick >= 1 ? `${tick}×` : `1/${1 / tick}`}</text>`);
  }
  ROWS.forEach(([label, bench, pick, target, kind, unit, pickBefore], i) => {
    const y = top + i * rowH;
    const after = readResult(bench)?.results;
    // "Before": measured in the same run against a build without the optimisations when the
    // benchmark did that (--before-main), else from `<name>-before.json` if present.
    const before = readResult(`${bench}-before`)?.results;
    const value = after ? pick(after) : undefined;
    const inRun = after && pickBefore ? pickBefore(after) : undefined;
    const prev = inRun ?? (before ? pick(before) : undefined);
    const s = score(value, target, kind);
    const ps = score(prev, target, kind);
    out.push(`<text x="12" y="${y + 22}">${esc(label)}</text>`);
    if (ps !== undefined) out.push(`<rect x="${barX}" y="${y + 4}" width="${Math.max(1, x(ps) - barX)}" height="6" fill="#9e9e9e"><title>${esc(`before: ${show(prev, unit)}`)}</title></rect>`);
    if (s !== undefined) {
      const met = s >= 1;
      out.push(`<rect x="${barX}" y="${y + 12}" width="${Math.max(1, x(s) - barX)}" height="16" fill="${met ? '#2e7d32' : '#c62828'}"><title>${esc(`${show(value, unit)} (target ${kind === 'min' ? '≥' : '≤'} ${show(target, unit)})`)}</title></rect>`);
    }
    const text = `${show(value, unit)}  (target ${kind === 'min' ? '≥' : '≤'} ${show(target, unit)})${prev !== undefined ? `  before: ${show(prev, unit)}` : ''}`;
    out.push(`<text x="${barX + barW + 8}" y="${y + 24}" font-size="12" fill="${s === undefined ? '#999' : s >= 1 ? '#1b5e20' : '#b71c1c'}">${esc(text)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Writes docs/performance.svg; returns its path. */
export function writeChart() {
  const dir = join(REPO_ROOT, 'docs');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'performance.svg');
  writeFileSync(path, renderChart());
  return path;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(writeChart());
}

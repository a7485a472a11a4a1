// Summarises a V8 CPU profile (`node --cpu-prof`) of the gateway: self time per category
// (the package or runtime part a function belongs to) and the top functions, in µs per unit of
// work when `--per N` gives the number of commands or deliveries the profile covers.
//
//   node bench/profile-summary.mjs <file.cpuprofile> [--per 12000] [--top 40] [--json]
//        [--from <s>] [--to <s>]   (only the samples in that window after the profile started)
//        [--feature <name prefix>] (top functions of that feature only)
//   node bench/profile-summary.mjs <a.cpuprofile> --compare <b.cpuprofile> [--from/--to for a]
//        [--compare-from/--compare-to for b] [--scale <µs a>,<µs b>]
//        Markdown table of both profiles' feature shares; with --scale (CPU per unit of work
//        measured without the profiler, e.g. by command-cost.mjs) also in µs per unit.
//
// Get a profile with BENCH_GATEWAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" and any
// benchmark (the gateway writes it when stopped with SIGTERM).
import { readFileSync } from 'node:fs';
import { num, parseOptions, usageError } from './lib.mjs';

/** The category of a profile node: the package, runtime part or V8 bucket its time belongs to. */
export function categoryOf(node) {
  const { url, functionName } = node.callFrame;
  if (functionName === '(garbage collector)') return 'gc';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return 'program (native, outside JS)';
  if (url === '') {
    if (/^(sign|verify|oneShotDigest|digest|Hash|update)$/.test(functionName)) return 'node:crypto (native)';
    if (/^(writev|writeBuffer|writeUtf8String|writeLatin1String)$/.test(functionName)) return 'socket writes (native)';
    return `native: ${functionName || '(anonymous)'}`;
  }
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) {
    const pkg = m[1];
    if (pkg.startsWith('@edge-gateway/')) return pkg;
    return pkg;
  }
  const ours = /\/(packages|apps)\/([^/]+)\//.exec(url);
  if (ours) return `@edge-gateway/${ours[2]}`;
  if (url.startsWith('node:internal/http2') || url.startsWith('node:http2')) return 'node:http2';
  if (url.startsWith('node:internal/crypto') || url === 'node:crypto') return 'node:crypto (JS)';
  if (url.startsWith('node:internal/streams') || url === 'node:stream') return 'node:streams';
  if (url.startsWith('node:net') || url.startsWith('node:internal/net') || url.startsWith('node:internal/stream_base')) return 'node:net';
  if (url.startsWith('node:internal/timers') || url === 'node:timers') return 'node:timers';
  if (url.startsWith('node:internal/process/task_queues') || url.startsWith('node:internal/process/promises')) return 'node:microtasks';
  if (url.startsWith('node:internal/abort_controller') || url.startsWith('node:internal/event_target')) return 'node:AbortController/EventTarget';
  if (url.startsWith('node:events') || url.startsWith('node:internal/events')) return 'node:events';
  if (url.startsWith('node:internal/buffer') || url === 'node:buffer') return 'node:buffer';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(-1)[0]}`;
  return url;
}

/**
 * What a sample's time is for. "Owner" features are looked for along the whole stack, highest
 * priority first (so the metric recorded by the Redis wrapper counts as metrics, and node's
 * AbortController under node-redis counts as Redis); other samples go to the first matching
 * frame from the leaf up, then to the leaf's category.
 */
const OWNER_FEATURES = [
  ['Ed25519 verify', (f) => f.functionName === 'verifyOneShot'],
  ['Ed25519 sign', (f) => f.functionName === 'signOneShot'],
  ['log line (winston)', (f) => /\/(winston|logform|readable-stream|safe-stable-stringify|triple-beam|winston-transport)\//.test(f.url) || /(apps\/gateway|packages\/node-runtime)\/dist\/logging\.js/.test(f.url) || f.functionName === 'logCall'],
  ['metrics (OpenTelemetry SDK)', (f) => /@opentelemetry\/(sdk-metrics|exporter-prometheus)\//.test(f.url) || (f.functionName === 'record' && /edge-gateway-service/.test(f.url))],
  ['span + trace context (OpenTelemetry API, no SDK)', (f) => (/@opentelemetry\/(api|core)\//.test(f.url) && f.functionName !== 'with') || f.functionName === 'startSpan' || f.functionName === 'traceIdOf'],
  ['Redis (node-redis + wrapper)', (f) => /@redis\/client\/|adapters-redis\/dist/.test(f.url)],
  ['protobuf encode/decode', (f) => /@bufbuild\/protobuf\/|\/protobufjs\/|\/generated\//.test(f.url)],
  ['canonical bytes + SHA-256', (f) => /signing\/canonical\.js/.test(f.url)],
];
const LEAF_FEATURES = [
  ['AbortController / EventTarget', (f) => /node:internal\/(abort_controller|event_target)/.test(f.url)],
  ['grpc-js (server, and client of the downstream hop)', (f) => /@grpc\/grpc-js\//.test(f.url)],
  ['core pipeline (our code)', (f) => /packages\/core\/dist/.test(f.url)],
  ['gRPC adapter (our code)', (f) => /packages\/adapters-grpc\/dist/.test(f.url)],
  ['app (our code)', (f) => /apps\/gateway\/dist/.test(f.url)],
];

export function featureOf(stack) {
  for (const [name, match] of OWNER_FEATURES) if (stack.some(match)) return name;
  for (const frame of stack) for (const [name, match] of LEAF_FEATURES) if (match(frame)) return name;
  const leaf = categoryOf({ callFrame: stack[0] });
  if (/^node:(http2|net|streams)$|^socket writes/.test(leaf)) return 'http2 + sockets (node, both hops)';
  if (leaf === 'gc') return 'GC';
  return `runtime: ${leaf}`;
}

/** Self time per category and function, over the samples `fromS`..`toS` seconds after the profile started. */
export function summarizeProfile(profile, { fromS = 0, toS = Infinity, onlyFeature } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  const times = profile.timeDeltas;
  let at = 0;
  for (let i = 0; i < profile.samples.length; i += 1) {
    at += times[i] ?? 0;
    if (at < fromS * 1e6 || at > toS * 1e6) continue;
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (times[i] ?? 0));
  }
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stackOf = (id) => {
    const frames = [];
    for (let at = id; at !== undefined; at = parent.get(at)) frames.push(byId.get(at).callFrame);
    return frames;
  };
  const categories = new Map();
  const features = new Map();
  const functions = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    const category = categoryOf(node);
    if (category === 'idle') {
      idle += us;
      continue;
    }
    total += us;
    categories.set(category, (categories.get(category) ?? 0) + us);
    const feature = featureOf(stackOf(id));
    features.set(feature, (features.get(feature) ?? 0) + us);
    if (onlyFeature !== undefined && !feature.startsWith(onlyFeature)) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(packages|apps)\//, '$1/')}:${lineNumber + 1}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
  }
  const sorted = (map) => [...map.entries()].sort((a, b) => b[1] - a[1]);
  return { busyUs: total, idleUs: idle, features: sorted(features), categories: sorted(categories), functions: sorted(functions) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const spec = {
    per: 'number',
    top: 'number',
    json: 'boolean',
    from: 'number',
    to: 'number',
    feature: 'string',
    compare: 'string',
    'compare-from': 'number',
    'compare-to': 'number',
    scale: 'numbers',
    label: 'string',
    'compare-label': 'string',
  };
  const args = parseOptions('profile-summary.mjs', spec, process.argv.slice(2), { positionals: '<file.cpuprofile>' });
  const file = args._.find((a) => a.endsWith('.cpuprofile'));
  if (!file || args._.length !== 1) usageError('profile-summary.mjs', spec, 'one <file.cpuprofile> expected', '<file.cpuprofile>');
  if (typeof args.compare === 'string') {
    printComparison(file, args);
    process.exit(0);
  }
  const summary = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')), { fromS: num(args, 'from', 0), toS: num(args, 'to', Infinity), onlyFeature: typeof args.feature === 'string' ? args.feature : undefined });
  const per = num(args, 'per', 0);
  const top = num(args, 'top', 40);
  if (args.json) {
    console.log(JSON.stringify({ ...summary, functions: summary.functions.slice(0, top) }, null, 2));
  } else {
    const fmt = (us) => `${((us / summary.busyUs) * 100).toFixed(1).padStart(5)} %${per > 0 ? `  ${(us / per).toFixed(1).padStart(6)} µs` : ''}`;
    console.log(`busy ${(summary.busyUs / 1e6).toFixed(2)} s, idle ${(summary.idleUs / 1e6).toFixed(2)} s${per > 0 ? `, ${(summary.busyUs / per).toFixed(1)} µs per unit over ${per}` : ''}`);
    console.log('\nwhat the time is for (see featureOf):');
    for (const [name, us] of summary.features) if (us / summary.busyUs >= 0.002) console.log(`  ${fmt(us)}  ${name}`);
    console.log('\ncategories (self time):');
    for (const [name, us] of summary.categories) if (us / summary.busyUs >= 0.002) console.log(`  ${fmt(us)}  ${name}`);
    console.log(`\ntop ${top} functions (self time):`);
    for (const [name, us] of summary.functions.slice(0, top)) console.log(`  ${fmt(us)}  ${name}`);
  }
}

/** A markdown table of the feature shares of two profiles (e.g. the gateway and its baseline). */
function printComparison(file, args) {
  const load = (path, from, to) => summarizeProfile(JSON.parse(readFileSync(path, 'utf8')), { fromS: from, toS: to });
  const a = load(file, num(args, 'from', 0), num(args, 'to', Infinity));
  const b = load(args.compare, num(args, 'compare-from', 0), num(args, 'compare-to', Infinity));
  const [scaleA, scaleB] = typeof args.scale === 'string' ? args.scale.split(',').map(Number) : [NaN, NaN];
  const share = (summary) => new Map(summary.features.map(([name, us]) => [name, us / summary.busyUs]));
  const sa = share(a);
  const sb = share(b);
  const names = [...new Set([...sa.keys(), ...sb.keys()])].sort((x, y) => (sa.get(y) ?? 0) - (sa.get(x) ?? 0));
  const cell = (s, scale) => (s === undefined || s < 0.002 ? '—' : `${(s * 100).toFixed(1)} %${Number.isFinite(scale) ? ` (${Math.round(s * scale)} µs)` : ''}`);
  console.log(`| what the CPU is for | ${args.label ?? 'a'} | ${args['compare-label'] ?? 'b'} |`);
  console.log('| --- | --- | --- |');
  for (const name of names) {
    if ((sa.get(name) ?? 0) < 0.002 && (sb.get(name) ?? 0) < 0.002) continue;
    console.log(`| ${name} | ${cell(sa.get(name), scaleA)} | ${cell(sb.get(name), scaleB)} |`);
  }
  console.log(`| **total** | 100 %${Number.isFinite(scaleA) ? ` (${Math.round(scaleA)} µs)` : ''} | 100 %${Number.isFinite(scaleB) ? ` (${Math.round(scaleB)} µs)` : ''} |`);
}

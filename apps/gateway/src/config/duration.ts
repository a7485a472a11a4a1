// The Go duration syntax of the settings is @edge-gateway/node-runtime's; this subpath stays for the CLI.
export { formatDuration, parseGoDuration } from '@edge-gateway/node-runtime';

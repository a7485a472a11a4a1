#!/usr/bin/env bash
# Installs everything `npm ci && npm test` needs on Debian (12 or later), in one command:
#   sudo scripts/install-prerequisites.sh        (or as root; `.ci/run` runs it first)
# - redis-server and redis-cli: the tests start their own servers, Sentinels and Clusters on
#   free ports (the packaged service is stopped: it is not needed);
# - jq: the system tests run the runbook's jq checks on the gateway's logs;
# - chromium: the browser-client tests drive Debian's headless Chromium (never a download);
# - systemd-analyze: deploy/systemd is checked with `systemd-analyze verify`.
# Node.js itself is checked, not installed: Debian's own nodejs package is older than the
# `engines` floor (package.json), so install Node >= 20.19 first (nodejs.org or your distro's
# backports) and run this script again.
set -euo pipefail

required_node='20.19.0'
if ! command -v node >/dev/null 2>&1; then
  echo "install-prerequisites: node not found: install Node.js >= ${required_node} first" >&2
  exit 1
fi
if ! node -e "
  const [a, b] = process.versions.node.split('.').map(Number);
  const [ra, rb] = '${required_node}'.split('.').map(Number);
  process.exit(a > ra || (a === ra && b >= rb) ? 0 : 1);"; then
  echo "install-prerequisites: node $(node --version) is older than ${required_node}" >&2
  exit 1
fi

# command -> Debian package
declare -A packages=(
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [jq]=jq
  [systemd-analyze]=systemd
)
missing=()
for cmd in "${!packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${packages[$cmd]}")
done
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-prerequisites: installing ${missing[*]} from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
  # The tests spawn their own redis-server on free ports: a service the package just started is
  # not needed (a Redis that was already running is left alone).
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    (service redis-server stop || true) >/dev/null 2>&1
  fi
fi

echo "node $(node --version)"
redis-server --version
redis-cli --version
jq --version
/usr/bin/chromium --version
systemd-analyze --version | head -n 1

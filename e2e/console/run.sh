#!/usr/bin/env bash
# Browser tests of the migration console: starts the whole stack with `orderctl up --demo` (the
# README's first command) on free ports, a fresh database and fresh topics, against the
# PostgreSQL and Kafka that are running (scripts/test starts them), then drives the console in
# Debian's headless Chromium with Playwright. Screenshots are kept in e2e/console/artifacts/
# (or CONSOLE_ARTIFACTS). Exits non-zero when a test fails, is skipped, or the stack does not
# come up.
#
#   e2e/console/run.sh
#
# Optional: DATABASE_URL (the server to make the scratch database on, default
# postgres://postgres@127.0.0.1:5432/postgres), KAFKA_BROKERS (default 127.0.0.1:9092),
# CARGO_TARGET_DIR, CHROMIUM_PATH (default /usr/bin/chromium).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "console e2e: $chromium is missing (scripts/setup.sh installs Debian's chromium)" >&2
  exit 1
fi

exec 9>"${TMPDIR:-/tmp}/console-e2e-npm-$(id -u).lock"
flock 9
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
flock -u 9

(cd "$root" && cargo build --quiet -p orderctl -p proxy -p order-service -p sap-mock -p sap-sync)
bin="${CARGO_TARGET_DIR:-$root/target}/debug"

server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
brokers="${KAFKA_BROKERS:-127.0.0.1:9092}"
id="$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')"
db="console_e2e_$id"
psql -q "$server_url" -c "CREATE DATABASE $db" >/dev/null
db_url="${server_url%/*}/$db"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
proxy_port=$(free_port); admin_port=$(free_port); orders_port=$(free_port); sap_port=$(free_port); sync_port=$(free_port)
data="$(mktemp -d)"
token="console-e2e-$id"
artifacts="${CONSOLE_ARTIFACTS:-$here/artifacts}"
rm -rf "$artifacts"
mkdir -p "$artifacts"

pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  cp "$data"/logs/*.log "$artifacts"/ 2>/dev/null || true
  cp "$data/orderctl.out" "$artifacts"/ 2>/dev/null || true
  rm -rf "$data"
  psql -q "$server_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

ORDERS_DATA_DIR="$data" DATABASE_URL="$db_url" KAFKA_BROKERS="$brokers" \
  KAFKA_TOPIC="console-e2e-orders-$id" SAP_SYNC_GROUP="console-e2e-$id" \
  SAP_SYNC_STATE_TOPIC="console-e2e-state-$id" \
  PROXY_PORT="$proxy_port" PROXY_ADMIN_PORT="$admin_port" ORDER_SERVICE_PORT="$orders_port" \
  SAP_MOCK_PORT="$sap_port" SAP_SYNC_PORT="$sync_port" ADMIN_TOKEN="$token" RUST_LOG=warn \
  "$bin/orderctl" up --demo --demo-rate 10 >"$data/orderctl.out" 2>&1 &
pid=$!

for _ in $(seq 1 1800); do
  if grep -q "stack is up" "$data/orderctl.out" 2>/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "console e2e: orderctl up exited before the stack was up:" >&2
    cat "$data/orderctl.out" >&2
    exit 1
  fi
  sleep 0.1
done
if ! grep -q "stack is up" "$data/orderctl.out"; then
  echo "console e2e: the stack was not up within 180 s:" >&2
  cat "$data/orderctl.out" >&2
  exit 1
fi

echo "console e2e against http://127.0.0.1:$admin_port/console (screenshots in $artifacts)"
set +e
CONSOLE_ADMIN_URL="http://127.0.0.1:$admin_port" CONSOLE_ADMIN_TOKEN="$token" \
  CONSOLE_ARTIFACTS="$artifacts" CHROMIUM_PATH="$chromium" \
  node --test --test-reporter=spec console.test.mjs 2>&1 | tee "$artifacts/test-output.txt"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  echo "console e2e: failed (exit $rc); logs and screenshots in $artifacts" >&2
  exit "$rc"
fi
if grep -Eq '^ℹ (skipped|todo|cancelled) [1-9]' "$artifacts/test-output.txt"; then
  echo "console e2e: tests were skipped or cancelled; not a green run" >&2
  exit 1
fi
echo "console e2e: passed; screenshots in $artifacts"

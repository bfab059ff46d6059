#!/usr/bin/env bash
# Installs what building, running and testing the stack needs, and nothing that is already
# there. Safe to run again. Used by scripts/start and scripts/test (and so by CI).
#
# - Debian packages: PostgreSQL (server, contrib for pgbench), cmake and the libcurl headers
#   (rdkafka builds librdkafka from its vendored sources), Maven and a JRE (Apache Kafka's jars
#   are fetched from Maven Central and run on the machine's Java), Node.js and npm (the SAP SDK
#   compatibility test), Python with venv (schemathesis), a C toolchain, Chromium (the
#   console's browser test drives it with Playwright; Playwright's own browser download is
#   neither used nor reachable here).
# - Apache Kafka's jars (scripts/kafka.sh install).
# - The Rust toolchain is expected (rustup); its version is checked.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'setup.sh: %s\n' "$*" >&2; }

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have cc || missing+=(build-essential)
have cmake || missing+=(cmake)
have pkg-config || missing+=(pkg-config)
[ -f /usr/include/curl/curl.h ] || [ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] \
  || [ -f /usr/include/aarch64-linux-gnu/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
have java || missing+=(default-jre-headless)
have mvn || missing+=(maven)
have node || missing+=(nodejs)
have npm || missing+=(npm)
have pgbench || missing+=(postgresql-contrib)
# the console's browser test (e2e/console) drives Debian's Chromium with Playwright
[ -x /usr/bin/chromium ] || missing+=(chromium)
have python3 || missing+=(python3)
# schemathesis runs in a virtual environment of the project's (scripts/schemathesis.sh)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${missing[*]} (run as root, or install them)"
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

"$repo/scripts/postgres.sh" install
if [ -z "${KAFKA_BROKERS:-}" ]; then
  "$repo/scripts/kafka.sh" install
fi

if ! have cargo; then
  say "cargo not found: install Rust with rustup (1.94 or newer)"
  exit 1
fi
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rust_minor:-0}" -lt 94 ]; then
  say "Rust $(rustc --version) is too old: 1.94 or newer is needed (rustup update)"
  exit 1
fi

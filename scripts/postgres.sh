#!/usr/bin/env bash
# The project's own PostgreSQL: installed from Debian's packages when missing, one cluster under
# the project data folder, on its own port. Idempotent: start on a running cluster is a no-op.
#
#   scripts/postgres.sh install   install the server packages if initdb/pg_ctl are missing
#   scripts/postgres.sh start     install, init (first time) and start; wait until it accepts
#   scripts/postgres.sh stop      stop (fast shutdown)
#   scripts/postgres.sh crash     stop at once without a checkpoint (immediate mode), as a crash would
#   scripts/postgres.sh status    exit 0 when running
#   scripts/postgres.sh url       print the DATABASE_URL of the project cluster (database orders)
#   scripts/postgres.sh drop-scratch  drop test_/bench_/outbox_bench_ databases older than
#                                 SCRATCH_MAX_AGE_MIN minutes (default 120: a test run that is
#                                 still going on, maybe another engineer's, keeps its databases)
#
# Environment: ORDERS_DATA_DIR (default <repo>/.data), PG_PORT (default 5432), PG_CLUSTER_DIR
# (default $ORDERS_DATA_DIR/postgres; tests run private clusters they can stop this way).
# When DATABASE_URL or DB_HOST is set, the project cluster is not used: start only checks that
# the given server answers.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data_root=${ORDERS_DATA_DIR:-$repo/.data}
pg_dir=${PG_CLUSTER_DIR:-$data_root/postgres}
pg_data=$pg_dir/data
pg_port=${PG_PORT:-5432}
pg_log=$pg_dir/postgres.log

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

external() { [ -n "${DATABASE_URL:-}" ] || [ -n "${DB_HOST:-}" ]; }

as_owner() {
  # PostgreSQL refuses to run as root: run its tools as the postgres user then.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd_install() {
  if pg_bin_dir >/dev/null && command -v psql >/dev/null && command -v pgbench >/dev/null; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and this is not root: install the Debian packages postgresql and postgresql-contrib"
  log "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql postgresql-contrib >/dev/null
  # The Debian package starts its own cluster on 5432; ours must own the port.
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
      pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
      sed -i 's/^auto/manual/' "/etc/postgresql/$ver/$name/start.conf" 2>/dev/null || true
    done
  fi
  pg_bin_dir >/dev/null || die "installed PostgreSQL but found no initdb under /usr/lib/postgresql"
}

running() {
  local bin; bin=$(pg_bin_dir) || return 1
  [ -f "$pg_data/PG_VERSION" ] || return 1
  as_owner "$bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1
}

cmd_start() {
  if external; then
    log "DATABASE_URL/DB_HOST set: using the external server, not starting one"
    return 0
  fi
  cmd_install
  local bin; bin=$(pg_bin_dir)
  if running; then return 0; fi
  mkdir -p "$pg_dir"
  if [ "$(id -u)" = 0 ]; then
    # postgres must be able to reach its folder: traverse rights on every parent.
    local p=$pg_dir
    while [ "$p" != / ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
    chown postgres:postgres "$pg_dir"
  fi
  if [ ! -f "$pg_data/PG_VERSION" ]; then
    log "initialising a cluster in $pg_data"
    as_owner "$bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$pg_data/postgresql.conf" <<CONF
# project settings (scripts/postgres.sh)
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
CONF
  fi
  if ! as_owner "$bin/pg_ctl" -D "$pg_data" -l "$pg_log" -w -t 60 \
      -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null; then
    tail -n 20 "$pg_log" >&2 || true
    die "PostgreSQL did not start (log: $pg_log)"
  fi
  as_owner psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='orders'" | grep -q 1 \
    || as_owner psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qc "CREATE DATABASE orders" >/dev/null
  log "running on 127.0.0.1:$pg_port (data $pg_data)"
}

cmd_stop() {
  local mode=${1:-fast}
  external && return 0
  local bin; bin=$(pg_bin_dir) || return 0
  running || return 0
  as_owner "$bin/pg_ctl" -D "$pg_data" -m "$mode" -w stop >/dev/null
}

# Drops the per-test and per-benchmark databases earlier runs left behind (each test gets a
# fresh database and does not drop it, so a failed test's data can be inspected afterwards).
cmd_drop_scratch() {
  external && { log "external server: leaving its databases alone"; return 0; }
  running || return 0
  # A database's age: the time its PG_VERSION file was written, at CREATE DATABASE.
  local age=${SCRATCH_MAX_AGE_MIN:-120}
  local q="SELECT datname FROM pg_database WHERE datname ~ '^(test|bench|outbox_bench)_'
    AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - interval '$age minutes'"
  local names; names=$(as_owner psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qtAc "$q")
  [ -n "$names" ] || return 0
  log "dropping $(wc -l <<<"$names") scratch databases of earlier runs"
  while read -r name; do
    printf 'DROP DATABASE IF EXISTS "%s" WITH (FORCE);\n' "$name"
  done <<<"$names" | as_owner psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -q >/dev/null
}

case "${1:-}" in
  install) cmd_install ;;
  drop-scratch) cmd_drop_scratch ;;
  start) cmd_start ;;
  stop) cmd_stop fast ;;
  crash) cmd_stop immediate ;;
  status) running ;;
  url) echo "${DATABASE_URL:-postgres://postgres@127.0.0.1:$pg_port/orders}" ;;
  *) echo "usage: $0 install|start|stop|crash|status|url|drop-scratch" >&2; exit 2 ;;
esac

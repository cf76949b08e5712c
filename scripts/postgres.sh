#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on loopback for the journal tests and print its URL.
#
#   url=$(scripts/postgres.sh) && export REBALANCER_TEST_PG_URL="$url"
#
# Installs Debian's postgresql package when it is missing (needs root and apt), runs a
# cluster in $REBALANCER_PG_DIR (default /tmp/rebalancer-pg) as the postgres user on
# 127.0.0.1:$REBALANCER_PG_PORT (default 54329), trust auth on loopback only, and creates the
# database $REBALANCER_PG_DB (default rebalancer_test) if missing. Progress goes to stderr;
# the URL alone to stdout. `scripts/dev test` names one database per checkout, so checkouts
# at different journal migrations never share one.
# Exits non-zero (saying why on stderr) when PostgreSQL cannot be had; callers skip then.
# `scripts/postgres.sh stop` stops the cluster.
set -euo pipefail
DIR=${REBALANCER_PG_DIR:-/tmp/rebalancer-pg}
PORT=${REBALANCER_PG_PORT:-54329}
DB=${REBALANCER_PG_DB:-rebalancer_test}
case $DB in *[!a-z0-9_]*|"") echo "postgres.sh: REBALANCER_PG_DB must be [a-z0-9_]+, got '$DB'" >&2; exit 1;; esac
say() { echo "postgres.sh: $*" >&2; }

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

BIN=$(find_bin || true)
if [ -z "$BIN" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "PostgreSQL is not installed and cannot be installed here (needs root and apt-get)"
    exit 1
  fi
  say "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get install -y -q postgresql >/dev/null 2>&1 ||
         { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql >/dev/null 2>&1; }; }; then
    say "apt-get install postgresql failed (no package registry reachable?)"
    exit 1
  fi
  BIN=$(find_bin || true)
  [ -n "$BIN" ] || { say "postgresql installed but initdb not found"; exit 1; }
fi

# run PostgreSQL's tools as the postgres user when we are root (initdb refuses root)
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "${1:-}" = stop ]; then
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >&2 || true
  exit 0
fi

init() {
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$DIR"
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    say "creating a cluster in $DIR/data"
    as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  fi
}
start() {
  as_pg "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1 && return 0
  say "starting PostgreSQL on 127.0.0.1:$PORT"
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off" start >/dev/null
}
[ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || useradd --system postgres; }
init
if ! start; then
  # a cluster left by a killed run (stale lock file, other version): start afresh once
  say "PostgreSQL did not start; recreating the cluster"
  tail -3 "$DIR/server.log" >&2 || true
  rm -rf "$DIR/data"
  init
  start || { say "PostgreSQL did not start; see $DIR/server.log"; exit 1; }
fi
psql_() { PGOPTIONS="-c client_min_messages=warning" as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q "$@"; }
# kept between runs (tests keep apart by account), so parallel runs never pull it away
if [ "$(psql_ -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  psql_ -c "CREATE DATABASE $DB" >/dev/null
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"

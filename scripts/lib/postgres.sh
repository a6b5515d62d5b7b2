# Sourced by scripts/test and scripts/fuzz: makes sure a PostgreSQL server answers and
# exports JOBS_TEST_POSTGRES_URL (an admin URL; the callers create their own databases).
#
# The server is the one JOBS_TEST_POSTGRES_URL names, else the default
# postgres://postgres@127.0.0.1:5432/postgres, else a throwaway cluster started from the
# installed PostgreSQL binaries and stopped when the calling script exits. If none can be
# had, the caller fails with a message saying why: PostgreSQL tests never skip.

default_url="postgres://postgres@127.0.0.1:5432/postgres"

fail() { echo "${0##*/}: $*" >&2; exit 1; }

server_answers() {
  # pg_isready is part of the client tools; fall back to psql if it is missing.
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -d "$1"
  else
    psql "$1" -Atqc 'select 1' >/dev/null 2>&1
  fi
}

# Script-level (not local): the EXIT trap that stops the cluster needs them.
pg_bin="" own_dir="" as_owner=()

# Stops the throwaway cluster, if this script started one.
stop_own_cluster() {
  [ -n "$own_dir" ] || return 0
  "${as_owner[@]}" "$pg_bin/pg_ctl" -D "$own_dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$own_dir"
}

start_own_cluster() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] ||
    fail "no PostgreSQL server answers at $default_url and no PostgreSQL binaries were found under /usr/lib/postgresql to start one (install the postgresql package, or set JOBS_TEST_POSTGRES_URL)"
  local port=${JOBS_TEST_OWN_POSTGRES_PORT:-55432}
  own_dir=$(mktemp -d /tmp/jobs-test-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: run the cluster as the postgres user.
    id postgres >/dev/null 2>&1 || fail "running as root and there is no postgres user to own a cluster"
    chown postgres "$own_dir"
    as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups)
  fi
  echo "${0##*/}: no server at $default_url; starting a throwaway cluster on port $port" >&2
  "${as_owner[@]}" "$pg_bin/initdb" -D "$own_dir/data" --auth=trust -U postgres >"$own_dir/initdb.log" 2>&1 ||
    fail "initdb failed; see $own_dir/initdb.log"
  trap stop_own_cluster EXIT
  "${as_owner[@]}" "$pg_bin/pg_ctl" -D "$own_dir/data" -l "$own_dir/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $own_dir" start >/dev/null ||
    fail "the throwaway cluster did not start; see $own_dir/server.log"
  export JOBS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

ensure_postgres() {
  if [ -n "${JOBS_TEST_POSTGRES_URL:-}" ]; then
    server_answers "$JOBS_TEST_POSTGRES_URL" ||
      fail "JOBS_TEST_POSTGRES_URL=$JOBS_TEST_POSTGRES_URL does not answer"
  elif [ -z "${JOBS_TEST_OWN_POSTGRES:-}" ] && server_answers "$default_url"; then
    export JOBS_TEST_POSTGRES_URL="$default_url"
  else
    start_own_cluster
  fi
}

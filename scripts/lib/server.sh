# Sourced by scripts/fuzz and bench/load: runs a built jobs-server against SQLite and a
# scratch PostgreSQL database, and cleans everything up when the calling script exits.
#
#   prepare_runs NAME         a work directory, a PostgreSQL server, the EXIT cleanup
#   start_server BINARY NAME URL [FLAG…]
#                             starts it on a free port, rate limits off (a benchmark or a
#                             fuzzer is one client sending as fast as it can), with any
#                             further flags; sets server_pid and server_address
#   stop_server
#   issue_token ADMIN URL CUSTOMER
#                             registers a client with every scope for CUSTOMER (with the
#                             jobs-admin binary ADMIN, on the store at URL) and gets it a token
#                             from the running server; sets access_token, client_id and
#                             client_secret
#   create_scratch_database   creates the scratch database; sets scratch_url

source scripts/lib/postgres.sh

server_pid="" server_address="" work="" database="" scratch_url="" access_token=""
client_id="" client_secret=""

cleanup_runs() {
  stop_server
  if [ -n "$database" ]; then
    psql "$JOBS_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" \
      >/dev/null 2>&1 || true
  fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
  stop_own_cluster
}

prepare_runs() {
  ensure_postgres
  work=$(mktemp -d "/tmp/jobs-$1.XXXXXX")
  trap cleanup_runs EXIT
}

start_server() {
  local binary=$1 name=$2 url=$3
  shift 3
  "$binary" --listen 127.0.0.1:0 --database-url "$url" --data-dir "$work" \
    --rate-limit 0 --token-rate-limit 0 "$@" \
    >"$work/$name.out" 2>"$work/$name.log" &
  server_pid=$!
  for _ in $(seq 1 100); do
    server_address=$(grep -o 'http://[0-9.:]*' "$work/$name.out" || true)
    [ -n "$server_address" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/$name.log" >&2; fail "the $name server exited"; }
    sleep 0.1
  done
  fail "the $name server did not start"
}

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

issue_token() {
  local admin=$1 url=$2 customer=$3 created
  created=$("$admin" --database-url "$url" --data-dir "$work" clients create \
    --name "scripts (customer $customer)" --scope jobs:read --scope jobs:write \
    --scope webhooks:manage --customer "$customer")
  client_id=$(awk '/^client_id:/ {print $2}' <<<"$created")
  client_secret=$(awk '/^client_secret:/ {print $2}' <<<"$created")
  access_token=$(curl -sf -X POST "$server_address/auth/tokens" -d grant_type=client_credentials \
    -d "client_id=$client_id" -d "client_secret=$client_secret" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  [ -n "$access_token" ] || fail "no access token for customer $customer"
}

# Not `$(…)`: a subshell would keep the name from the cleanup.
create_scratch_database() {
  database="jobs_scratch_$(date +%s)_$$"
  psql "$JOBS_TEST_POSTGRES_URL" -qc "CREATE DATABASE \"$database\"" >/dev/null
  scratch_url="${JOBS_TEST_POSTGRES_URL%/*}/$database"
}

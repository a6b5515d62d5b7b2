# Sourced by the benchmarks in bench/ after scripts/lib/server.sh: measuring helpers.
#
#   wrk_rate ARGS…       one wrk run (2 threads, $connections connections, $seconds s):
#                        prints "requests/s p99-ms", fails on any non-2xx answer
#   server_peak_mib      the running server's peak resident memory, in MiB
#   ratio A B            A / B, two decimals
#   literal TEXT         TEXT as an SQL string literal
#   checkpoint URL       a PostgreSQL CHECKPOINT, so a run does not pay for what came before

wrk_rate() {
  local out
  out=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency "$@" 2>&1)
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$out" >&2
    fail "non-2xx answers in a benchmark run"
  fi
  awk '/^Requests\/sec:/ {rate = $2}
       $1 == "99%" {v = $2 + 0; if ($2 ~ /us$/) v /= 1000; else if ($2 ~ /[^m]s$/) v *= 1000; p99 = v}
       END {print rate, p99}' <<<"$out"
}

server_peak_mib() {
  awk '/^VmHWM:/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }

literal() { printf "'%s'" "${1//\'/\'\'}"; }

checkpoint() { psql -qAt -v ON_ERROR_STOP=1 "$1" -c "CHECKPOINT" >/dev/null; }

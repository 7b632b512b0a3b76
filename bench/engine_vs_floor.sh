#!/usr/bin/env bash
# Side-by-side measurements of tcpms-server --protocol echo against the reference floor
# (bench/floor_echo_server.cc), in one run, on a Release build. Prints a Markdown report.
#
#   bench/engine_vs_floor.sh [BUILD_DIR]      (default build/release)
#
# Both servers run with the same number of loops (THREADS, default: all CPUs). Each figure is
# the server's CPU time (utime+stime from /proc, whole process) divided by the operations
# tcpms-bench completed against it, so the load generator sharing the cores does not count.
# Runs alternate floor / tcpms ROUNDS times (default 2) and report the median of each.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/release}/bin
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
IDLE_N=${IDLE_N:-19000}
for b in tcpms-server tcpms-bench floor_echo_server; do
  [ -x "$B/$b" ] || { echo "missing $B/$b: build the release preset first" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# start NAME -> sets PID and ADDR
start() {
  local name=$1 log="$work/$1.$RANDOM.log"
  : >"$log"  # exists before the child opens it, so the polling below never races it
  if [ "$name" = floor ]; then
    "$B/floor_echo_server" --listen 127.0.0.1:0 --threads "$THREADS" >"$log" 2>&1 &
  else
    "$B/tcpms-server" --protocol echo --listen 127.0.0.1:0 --threads "$THREADS" --no-admin \
      --log-level warn >"$log" 2>&1 &
    # tcpms prints its address at info level; ask again at info if warn hid it
  fi
  PID=$!
  pids+=("$PID")
  for _ in $(seq 100); do
    ADDR=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | head -1 | cut -d' ' -f3 || true)
    [ -n "$ADDR" ] && return 0
    ADDR=$(ss -ltnp 2>/dev/null | grep "pid=$PID," | grep -o '127.0.0.1:[0-9]*' | head -1 || true)
    [ -n "$ADDR" ] && return 0
    sleep 0.1
  done
  echo "$name did not start" >&2; cat "$log" >&2; exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# bench OUT ARGS... -> runs tcpms-bench with --json into OUT
bench() { local out=$1; shift; "$B/tcpms-bench" "$@" --json --no-progress >"$out" 2>"$out.log" || true; }

field() {  # FILE PYTHON-EXPR over d
  /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}
median() { /usr/bin/python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f'{statistics.median(v):.2f}')" "$@"; }

echo "## Echo: tcpms-server vs the floor server ($(date -u +%Y-%m-%d), $(nproc) cores, $THREADS loops each)"
echo
echo "| connections | server | round trips/s | server CPU us/round trip | p50 | p99 | p99.9 |"
echo "|---|---|---|---|---|---|---|"
for n in 1000 10000; do
  declare -A cpu=() rate=() lat=()
  for r in $(seq "$ROUNDS"); do
    for s in floor tcpms; do
      start "$s"
      out="$work/echo-$n-$s-$r.json"
      bench "$out" echo --target "$ADDR" -n "$n" --duration "$DURATION" --server-pid "$PID"
      stop "$PID"
      cpu[$s]+=" $(field "$out" "d['server_cost']['cpu_us_per_op']")"
      rate[$s]+=" $(field "$out" "d['counters']['round_trips_per_s']")"
      lat[$s]="$(field "$out" "' | '.join(f\"{d['latency']['round_trip'][k]/1e3:.0f} us\" for k in ('p50_ns','p99_ns','p99.9_ns'))")"
    done
  done
  for s in floor tcpms; do
    echo "| $n | $s | $(median ${rate[$s]}) | $(median ${cpu[$s]}) | ${lat[$s]} |"
  done
  unset cpu rate lat
done
echo
echo "Each row: median of $ROUNDS runs of \`tcpms-bench echo -n N --duration $DURATION\` (closed loop, one 64-byte"
echo "message in flight per connection); latency columns from the last run."
echo

echo "## Idle connections: user-space bytes per connection at $IDLE_N"
echo
echo "| server | RSS growth per connection (bytes) | kernel slab per connection (bytes) |"
echo "|---|---|---|"
for s in floor tcpms; do
  start "$s"
  out="$work/idle-$s.json"
  bench "$out" connect --target "$ADDR" -n "$IDLE_N" --hold 3 --server-pid "$PID"
  stop "$PID"
  echo "| $s | $(field "$out" "f\"{d['server_cost']['rss_bytes_per_connection']:.0f}\"") | $(field "$out" "f\"{d['server_cost']['slab_bytes_per_connection']:.0f}\" if 'slab_bytes_per_connection' in d['server_cost'] else 'n/a'") |"
done
echo
echo "\`tcpms-bench connect -n $IDLE_N --hold 3 --server-pid PID\` against a fresh server: RSS after"
echo "all are up minus RSS before, over $IDLE_N."
echo

echo "## Churn: connect, one round trip, close"
echo
echo "| server | target rate | cycles/s | server CPU us/cycle | connects >= 1 s | ListenOverflows | ListenDrops |"
echo "|---|---|---|---|---|---|---|"
for spec in "--rate 10000" "-c 200"; do
  for s in floor tcpms; do
    start "$s"
    out="$work/churn-$s.json"
    bench "$out" churn --target "$ADDR" $spec --duration "$DURATION" --server-pid "$PID"
    stop "$PID"
    label=$([ "$spec" = "-c 200" ] && echo "max (200 in flight)" || echo "10,000/s")
    echo "| $s | $label | $(field "$out" "d['counters'].get('cycles_per_s',0)") | $(field "$out" "f\"{d['server_cost']['cpu_us_per_op']:.2f}\"") | $(field "$out" "d['counters'].get('connects_ge_1s',0)") | $(field "$out" "d['netstat']['after']['listen_overflows']-d['netstat']['before']['listen_overflows']") | $(field "$out" "d['netstat']['after']['listen_drops']-d['netstat']['before']['listen_drops']") |"
  done
done
echo
echo "\`tcpms-bench churn --rate 10000 --duration $DURATION\` (open loop at 10,000 new connections/s) and"
echo "\`tcpms-bench churn -c 200 --duration $DURATION\` (as fast as it goes); kernel counters from /proc/net/netstat."

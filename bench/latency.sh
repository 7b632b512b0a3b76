#!/usr/bin/env bash
# bench/latency.sh [N] (default 150,000): N long-lived connections, each sending a small
# request at random intervals (open loop: RATE requests per second in total, latency measured
# from the intended send time), against tcpms-server and, in the same run, against the floor
# echo server (bench/floor_echo_server.cc) with the same number of processes. Writes the
# figures into docs/scale.md (SCALE_MD= to skip).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-150000}
RATE=${RATE:-20000}
DURATION=${DURATION:-30}
B=${BUILD_DIR:-build/release}/bin
SCALE_MD=${SCALE_MD-docs/scale.md}
# Connections planned per worker process. Below its cap (RLIMIT_NOFILE minus a 256 reserve =
# 19,744 here) because SO_REUSEPORT spreads connections by hash, not evenly.
# Connections planned per worker process: below each worker's cap (RLIMIT_NOFILE minus a
# 256 reserve = 19,744 here) because SO_REUSEPORT spreads connections by hash, not evenly.
PER_PROCESS=${PER_PROCESS:-19000}
work=$(mktemp -d)
source bench/lib.sh
trap cleanup_all EXIT
check_memory "$N" 10240
"$B/tcpms-doctor" --connections "$N" --role both --apply >"$work/doctor.txt" 2>&1 || true
processes=$(( (N + PER_PROCESS - 1) / PER_PROCESS ))
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() {  # NAME -> prints a table row
  local name=$1 port pid out
  port=$(free_port)
  if [ "$name" = floor ]; then
    # One floor process per worker, sharing the port through SO_REUSEPORT like tcpms's
    # workers; a shell parent makes them one process tree for --server-pid.
    bash -c "for i in \$(seq $processes); do '$B/floor_echo_server' --listen 127.0.0.1:$port --threads 1 & done; wait" \
      >"$work/floor.log" 2>&1 &
    pid=$!
  else
    "$B/tcpms-server" --protocol echo --listen "127.0.0.1:$port" --processes "$processes" \
      --threads 1 --no-admin >"$work/tcpms.log" 2>&1 &
    pid=$!
  fi
  PIDS+=("$pid")
  for _ in $(seq 100); do
    [ "$(ss -Hltn "sport = :$port" | wc -l)" -ge "$processes" ] && break
    sleep 0.1
  done
  out="$work/$name.json"
  "$B/tcpms-bench" echo --target "127.0.0.1:$port" -n "$N" --request-rate "$RATE" \
    --duration "$DURATION" --max-pending 2000 --connect-timeout 30 --max-time 900 \
    --server-pid "$pid" --json >"$out" 2>"$work/$name.bench.log" || true
  pkill -TERM -P "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ -s "$out" ] || { echo "no result for $name" >&2; tail -20 "$work/$name.bench.log" >&2; return 1; }
  [ "$(json "$out" "d['failure_total']")" = 0 ] || echo "$name: failures $(json "$out" "d['failures']")" >&2
  echo "| $name | $(json "$out" "d['counters'].get('connections',0)") | $(json "$out" "d['counters'].get('ops',0)") | $(json "$out" "' | '.join(f\"{d['latency']['round_trip'][k]/1e3:.0f} us\" for k in ('p50_ns','p99_ns','p99.9_ns','max_ns'))") | $(json "$out" "f\"{d['server_cost']['cpu_us_per_op']:.1f}\"") | $(json "$out" "d['failure_total']") |"
}

failures_total=0
table="| server | connections | requests answered | p50 | p99 | p99.9 | max | server CPU us/request | failures |
|---|---|---|---|---|---|---|---|---|
$(run floor)
$(run tcpms)"
echo "$table"
if [ -n "$SCALE_MD" ]; then
  write_section "$SCALE_MD" "latency:$N" "## $(printf "%'d" "$N") long-lived stimulus/response connections ($(date -u +%Y-%m-%d))

Command: \`RATE=$RATE DURATION=$DURATION bench/latency.sh $N\`: open loop, $RATE requests/s in total
spread at random over the connections, 64-byte requests, latency from the intended send time;
$processes server processes on each side.

$table"
fi
# Every request answered on both servers, or the run failed.
! grep -q "| [1-9][0-9]* |$" <<<"$table"

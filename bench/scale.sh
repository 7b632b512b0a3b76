#!/usr/bin/env bash
# bench/scale.sh [N] (default 1,000,000): N concurrent echo connections on this box.
#
# Applies the sysctls tcpms-doctor recommends, starts tcpms-server with enough worker
# processes (RLIMIT_NOFILE is per process), drives tcpms-bench connect with enough worker
# processes and 127.0.0.0/8 source addresses, holds all N, pings every one, and writes
# docs/scale.md (override with SCALE_MD=path, or SCALE_MD= to skip) plus an HTML report.
# Refuses if N cannot fit in memory. Cleans up everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
B=${BUILD_DIR:-build/release}/bin
HOLD=${HOLD:-10}
SCALE_MD=${SCALE_MD-docs/scale.md}
REPORT=${REPORT-$( [ -z "$SCALE_MD" ] || echo "${SCALE_MD%.md}-report.html" )}  # beside SCALE_MD
# Connections planned per worker process. Below its cap (RLIMIT_NOFILE minus a 256 reserve =
# 19,744 here) because SO_REUSEPORT spreads connections by hash, not evenly.
# Connections planned per worker process: below each worker's cap (RLIMIT_NOFILE minus a
# 256 reserve = 19,744 here) because SO_REUSEPORT spreads connections by hash, not evenly.
PER_PROCESS=${PER_PROCESS:-19000}
work=$(mktemp -d)
source bench/lib.sh
trap cleanup_all EXIT

for b in tcpms-server tcpms-bench tcpms-doctor; do
  [ -x "$B/$b" ] || { echo "missing $B/$b: run 'cmake --preset release && cmake --build --preset release'" >&2; exit 1; }
done
check_memory "$N" 10240   # measured: ~9.9 KB of kernel slab per loopback pair (docs/benchmarks.md)

echo "scale: tcpms-doctor --apply for $N connections (sysctls only)" >&2
"$B/tcpms-doctor" --connections "$N" --role both --apply >"$work/doctor.txt" 2>&1 || true

processes=$(( (N + PER_PROCESS - 1) / PER_PROCESS ))
"$B/tcpms-server" --protocol echo --listen 127.0.0.1:0 --processes "$processes" --threads 1 \
  --no-admin >"$work/server.log" 2>&1 &
server=$!
PIDS+=("$server")
addr=$(wait_listening "$work/server.log" "$server")
echo "scale: tcpms-server pid $server, $processes worker processes on $addr" >&2
sleep 1  # let every worker bind before connections arrive

out="$work/connect.json"
start_s=$(date +%s)
"$B/tcpms-bench" connect --target "$addr" -n "$N" --hold "$HOLD" --ping --max-pending 2000 \
  --connect-timeout 30 --reply-timeout 60 --max-time 600 --server-pid "$server" --json \
  ${REPORT:+--report "$REPORT"} >"$out" 2>"$work/bench.log" || true
end_s=$(date +%s)
grep -E "^(tcpms-bench|layout)" "$work/bench.log" >&2 || true

[ -s "$out" ] || { echo "tcpms-bench produced no result:" >&2; tail -30 "$work/bench.log" >&2; exit 1; }
established=$(json "$out" "d['counters'].get('established',0)")
pings=$(json "$out" "d['counters'].get('pings_ok',0)")
failures=$(json "$out" "d['failure_total']")
summary=$(cat <<TXT
| figure | value |
|---|---|
| connections asked | $N |
| established | $established |
| failures (by cause) | $failures $(json "$out" "d['failures'] or ''") |
| pinged (one echo round trip each) | $pings |
| time to establish all | $(json "$out" "f\"{d['counters'].get('time_to_establish_ms',0)/1000:.1f} s\"") |
| connections per second over the ramp | $(json "$out" "f\"{d['counters'].get('connects_per_s',0):,}\"") |
| connect latency p50 / p99 / max | $(json "$out" "' / '.join(f\"{d['latency']['connect'][k]/1e6:.1f} ms\" for k in ('p50_ns','p99_ns','max_ns'))") |
| time to ping all (the pings go out at once) | $(json "$out" "f\"{d['latency']['ping']['max_ns']/1e9:.2f} s\" if 'ping' in d['latency'] else 'n/a'") |
| server processes | $processes (RLIMIT_NOFILE $(ulimit -n) each) |
| server user-space memory per connection (RSS growth / N) | $(json "$out" "f\"{d['server_cost']['rss_bytes_per_connection']:.0f} bytes\"") |
| kernel memory per connection pair (slab growth / N) | $(json "$out" "f\"{d['server_cost']['slab_bytes_per_connection']:.0f} bytes\" if 'slab_bytes_per_connection' in d['server_cost'] else 'n/a (the host slab did not grow)'") |
| server total RSS (all workers) | $(json "$out" "f\"{d['server_after']['usage']['rss_bytes']/2**20:.0f} MiB\"") |
| bench layout | $(json "$out" "d['layout']['plan']"); $(json "$out" "d['layout']['processes']") processes |
TXT
)
echo "$summary"
if [ -n "$SCALE_MD" ]; then
  write_section "$SCALE_MD" "scale:$N" "## $(printf "%'d" "$N") concurrent echo connections ($(date -u +%Y-%m-%d))

Command: \`bench/scale.sh $N\`

$summary"
fi
# Stop the server while its connections are still up: the drain is part of what is tested.
kill -TERM "$server"
wait "$server" && echo "scale: server drained and exited 0" >&2 || { echo "scale: server exit $?" >&2; exit 1; }
[ "$established" = "$N" ] && [ "$pings" = "$N" ] && [ "$failures" = 0 ]

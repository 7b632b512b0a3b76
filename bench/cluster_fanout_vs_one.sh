#!/usr/bin/env bash
# Fan-out with subscribers spread over 3 cluster nodes (through Redis) against the same load on
# one node, interleaved ROUNDS times in one run. Prints tcpms-bench's throughput, loss and
# delivery latency lines for each. Needs redis-server; uses ports 6393, 1901-1904, 2001-2003.
#
#   bench/cluster_fanout_vs_one.sh [BUILD_DIR]      (default build/release)
set -u
cd "$(dirname "$0")/.."
B=${1:-build/release}/bin
ROUNDS=${ROUNDS:-2}
SUBS=${SUBS:-300}
DURATION=${DURATION:-5}
redis-server --port 6393 --save "" --appendonly no --daemonize yes >/dev/null
trap 'redis-cli -p 6393 shutdown nosave >/dev/null 2>&1' EXIT
sleep 0.5
show() { grep -E "per_s|lost|delivery  " | sed "s/^/$1 /"; }
three_nodes() {
  local pids=()
  for i in 1 2 3; do
    "$B/tcpms-server" --listen 127.0.0.1:190$i --admin-listen 127.0.0.1:200$i --threads 1 \
      --sys-interval 0 --log-level warn --cluster redis://127.0.0.1:6393 --node-id f$i \
      >/dev/null 2>&1 &
    pids+=($!)
  done
  sleep 2
  "$B/tcpms-bench" mqtt-fanout --target 127.0.0.1:1901 --target 127.0.0.1:1902 \
    --target 127.0.0.1:1903 -s "$SUBS" -p 1 --duration "$DURATION" 2>&1 | show 3nodes
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null
}
one_node() {
  "$B/tcpms-server" --listen 127.0.0.1:1904 --threads 1 --sys-interval 0 --no-admin \
    --log-level warn >/dev/null 2>&1 &
  local p=$!
  sleep 1
  "$B/tcpms-bench" mqtt-fanout --target 127.0.0.1:1904 -s "$SUBS" -p 1 --duration "$DURATION" \
    2>&1 | show 1node
  kill $p; wait $p 2>/dev/null
}
for _ in $(seq "$ROUNDS"); do three_nodes; one_node; done

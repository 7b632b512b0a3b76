#!/usr/bin/env bash
# bench/workers_per_client.sh [N] [P ...]   (defaults: 100,000 clients; 8 and 56 processes)
#
# The same N MQTT clients (CONNECT + SUBSCRIBE to a topic of their own, tcpms-bench mqtt-conn)
# against tcpms-server --processes P --threads 1 for each P, one server at a time: server CPU
# per client and server user-space bytes per client, so that what each worker process adds per
# client shows. Bytes two ways: RSS growth over all workers / N (a page the workers share, such
# as the binary's code, counts once per worker that touched it) and PSS growth / N (each
# physical page once). Issue 15's goal: 8 and 56 within 1.3x.
# FLOORS=1: then the same process counts with no MQTT at all, tcpms echo and the floor server
# (what the process count alone costs here). Prints Markdown. Timing: needs a quiet machine
# (memory does not).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(8 56)
B=${BUILD_DIR:-build/release}/bin
work=$(mktemp -d)
# shellcheck source=bench/lib.sh
source bench/lib.sh
trap cleanup_all EXIT

"$B/tcpms-doctor" --connections "$N" --role both --apply >"$work/doctor.txt" 2>&1 || true
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "## $N MQTT clients by worker processes ($(date -u +%F), commit $commit)"
echo
echo "| worker processes | subscribed | failures | server CPU us per client | server bytes per client (RSS) | (PSS) |"
echo "|---|---|---|---|---|---|"
# start_server PROTOCOL P LOG: tcpms-server with P one-loop workers; sets `server` and `addr`.
start_server() {
  "$B/tcpms-server" --protocol "$1" --listen 127.0.0.1:0 --processes "$2" --threads 1 \
    --no-admin >"$3" 2>&1 &
  server=$!
  PIDS+=("$server")
  addr=$(wait_listening "$3" "$server")
  wait_workers "$3" "$2"
}

for p in "${SIZES[@]}"; do
  start_server mqtt "$p" "$work/server-$p.log"
  sleep 2  # the workers' mesh links come up
  bench "$work/conn-$p.json" mqtt-conn --target "$addr" -n "$N" \
    --server-pid "$server" --connect-timeout 60 --reply-timeout 60
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
  /usr/bin/python3 - "$work/conn-$p.json" "$p" "$N" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); p, n = sys.argv[2], int(sys.argv[3])
c = d.get("counters", {})
ok = c.get("subscribed", c.get("connected", 0))
fail = sum(v for k, v in d.get("failures", {}).items()) if isinstance(d.get("failures"), dict) else d.get("failures", 0)
cost = d.get("server_cost", {})
cpu = cost.get("cpu_us_per_op")
mem = cost.get("rss_bytes_per_connection")
pss = cost.get("pss_bytes_per_connection")
print(f"| {p} | {ok:,} | {fail} | {cpu if cpu is None else f'{cpu:.1f}'} | {mem if mem is None else f'{mem:.0f}'} | "
      f"{pss if pss is None else f'{pss:.0f}'} |")
PY
done
echo
echo "\`bench/workers_per_client.sh $N ${SIZES[*]}\`: tcpms-bench mqtt-conn -n $N --server-pid PID per size."
[ -n "${FLOORS:-}" ] || exit 0

# What the process count alone costs on this machine: the same N clients, each connecting and
# sending one echo round trip, against tcpms-server --protocol echo and against P copies of
# the floor server (bench/floor_echo_server.cc, one loop each, one port through SO_REUSEPORT),
# which keeps no state and talks to no other process.
cpu_of() {
  /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); \
c=d['server_cost']; print(f\"{c.get('cpu_us_per_op', float('nan')):.1f} ({d['counters'].get('established', 0):,})\")" "$1"
}
echo
echo "| processes | tcpms echo: server CPU us per client (established) | floor: server CPU us per client (established) |"
echo "|---|---|---|"
for p in "${SIZES[@]}"; do
  start_server echo "$p" "$work/echo-$p.log"
  bench "$work/echo-$p.json" connect --target "$addr" -n "$N" --hold 1 --ping --max-pending 2000 \
    --server-pid "$server"
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
  port=$(/usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  # One parent for the P floors, so that --server-pid sums all of them.
  bash -c "for _ in \$(seq $p); do '$B/floor_echo_server' --listen 127.0.0.1:$port --threads 1 >/dev/null 2>&1 & done; wait" &
  floors=$!
  PIDS+=("$floors")
  sleep 2
  bench "$work/floor-$p.json" connect --target "127.0.0.1:$port" -n "$N" --hold 1 --ping \
    --max-pending 2000 --server-pid "$floors"
  pkill -P "$floors" 2>/dev/null || true; wait "$floors" 2>/dev/null || true
  echo "| $p | $(cpu_of "$work/echo-$p.json") | $(cpu_of "$work/floor-$p.json") |"
done
echo
echo "\`FLOORS=1 bench/workers_per_client.sh $N ${SIZES[*]}\`: tcpms-bench connect -n $N --hold 1 --ping."

#!/usr/bin/env bash
# bench/upgrade_cluster.sh [N]: the upgrade of one cluster node while another node pushes to
# its clients (docs/upgrade.md, "A cluster node"). A redis-server and two tcpms nodes, "a" and
# "b" (one process each, as cluster nodes run); N MQTT 3.1.1 clients of tcpms-bench
# mqtt-reach (default 15,000: a node is one process, and one process holds 20,000 descriptors
# here) on node a, each subscribed to a topic of its own at QoS 1. mqtt-reach's stream stage
# sends QoS 1 messages round robin to every client for 2 s, during `tcpms-server --upgrade` of
# node a, and 2 s after it returned; every message acknowledged must arrive. Its publish stage
# then reaches every client through the new process, and PUSHES of them are pushed by client
# id through node b's admin API: they cross to node a through its homes and directory.
#
# Prints the bench's figures, the peak memory of both generations of node a, and what node b
# logged about node a after it came up (nothing, when it did not notice the upgrade); exits
# non-zero unless nobody was disconnected, nothing acknowledged was lost, `--upgrade` returned
# 0, every client got its published and pushed message, and node b noticed nothing.
#
# Environment: BUILD_DIR (build/release), STREAM_RATE (5000), INFLIGHT (100), PUSHES (1000),
# MAX_LOGINS (5000), DRAIN (30 s), KEEP_JSON (copy the bench's JSON there).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-15000}
B=${BUILD_DIR:-build/release}/bin
STREAM_RATE=${STREAM_RATE:-5000}
INFLIGHT=${INFLIGHT:-100}
PUSHES=${PUSHES:-1000}
MAX_LOGINS=${MAX_LOGINS:-5000}
DRAIN=${DRAIN:-30}
work=$(mktemp -d)
source bench/lib.sh
trap cleanup_all EXIT
for b in tcpms-server tcpms-bench; do
  [ -x "$B/$b" ] || { echo "missing $B/$b: build it first" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
check_memory "$N" "$MQTT_BYTES_PER_PAIR"

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
# Node a's admin port is fixed: its successor binds the same address.
admin_a=127.0.0.1:$(free_port) admin_b=127.0.0.1:$(free_port)
node() {
  local name=$1 admin=$2; shift 2
  "$B/tcpms-server" --protocol mqtt --listen 127.0.0.1:0 --threads 1 --sys-interval 0 \
    --cluster "redis://127.0.0.1:$redis_port" --node-id "$name" --admin-listen "$admin" "$@" \
    >"$work/$name.log" 2>&1 &
}
node b "$admin_b"
PIDS+=($!)
node a "$admin_a" --pid-file "$work/a.pid"
SERVER=$!
PIDS+=("$SERVER")
ADDR=$(wait_listening "$work/a.log" "$SERVER")
for _ in $(seq 100); do grep -q "node 'a' (slot [0-9]*) is up" "$work/b.log" && break; sleep 0.1; done
echo "upgrade_cluster: node a pid $SERVER on $ADDR, node b, redis on $redis_port" >&2

/usr/bin/python3 bench/server_memory.py "$work/memory.json" "$work/a.pid" "$SERVER" &
sampler=$!
PIDS+=("$sampler")
bin=$(cd "$B" && pwd)
# The start time, and how much node b had logged by then: what it logs from there on is read.
upgrade_cmd="date +%s.%N >$work/upgrade.start; wc -l <$work/b.log >$work/b.before; exec $bin/tcpms-server --upgrade --pid-file $work/a.pid"
out="$work/reach.json"
"$B/tcpms-bench" mqtt-reach --target "$ADDR" -n "$N" --qos 1 --pushes "$PUSHES" --admin "$admin_b" \
  --stream-during "$upgrade_cmd" --stream-after 2 --stream-tail 2 --stream-rate "$STREAM_RATE" \
  --publishers 1 --inflight "$INFLIGHT" --drain "$DRAIN" "${REACH_FLEET_ARGS[@]}" \
  --max-logins "$MAX_LOGINS" --sync-timeout 300 --max-time 900 --json >"$out" 2>"$work/bench.log" || true
kill -TERM "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
grep -E "^(tcpms-bench|layout)" "$work/bench.log" >&2 || true
grep -E "SIGUSR2|handover|cluster" "$work/a.log" | tail -12 >&2 || true
[ -z "${KEEP_JSON:-}" ] || cp "$out" "$KEEP_JSON"
[ -s "$out" ] || { echo "tcpms-bench produced no result:" >&2; tail -30 "$work/bench.log" >&2; exit 1; }
new_pid=$(cat "$work/a.pid" 2>/dev/null || true)
if [ -n "$new_pid" ] && [ "$new_pid" != "$SERVER" ]; then kill -TERM "$new_pid" 2>/dev/null || true; fi
# What b said of a from the upgrade on: a node down, up, restarted or told everything again.
noticed=$(tail -n +"$(( $(cat "$work/b.before" 2>/dev/null || echo 0) + 1 ))" "$work/b.log" |
  grep -cE "is (down|up)|restarted|told everything|telling it everything" || true)

/usr/bin/python3 bench/upgrade_summary.py cluster "$out" "$work/memory.json" "$work/upgrade.start" "$N" "$PUSHES" "$noticed"

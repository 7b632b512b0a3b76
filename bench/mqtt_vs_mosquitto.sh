#!/usr/bin/env bash
# Side-by-side MQTT measurements of tcpms-server --protocol mqtt against Mosquitto (Debian's
# 2.0.11), in one run, on a Release build. Prints a Markdown report.
#
#   bench/mqtt_vs_mosquitto.sh [BUILD_DIR]      (default build/release)
#
# Each broker is started fresh for every run (tcpms: --threads THREADS, default 2, --no-admin;
# Mosquitto: single-threaded by design, a generated config on a free port) and driven by
# tcpms-bench with --server-pid, so every cost is the broker's own CPU time (utime+stime from
# /proc) or RSS divided by what the bench completed against it. The load generator shares the
# cores: CPU per operation is the headline, throughput and latency are what this box gave.
#
#   connections: mqtt-conn -n IDLE_N (unique client ids, clean session, one SUBSCRIBE each to
#                bench/<i>/cmd) as fast as it goes, held HOLD s: CPU per CONNECT+SUBSCRIBE and
#                RSS per idle client with one subscription.
#   fan-out:     mqtt-fanout, one topic, S subscribers, 1 publisher at R publishes/s (open loop,
#                QoS 0, 64-byte payloads) for DURATION s: CPU per delivery over the publish
#                phase (the connect storm before it is not charged), delivery latency from the
#                intended send time, deliveries/s, losses. FANOUT lists S:R pairs. Mosquitto
#                runs twice: as configured, and with allow_duplicate_messages true, which skips
#                its per-recipient scan of the message's earlier recipients (db__message_insert,
#                a strcmp per earlier recipient: quadratic in the fan-out).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/release}/bin
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10}
IDLE_N=${IDLE_N:-19000}
HOLD=${HOLD:-2}
FANOUT=${FANOUT:-"1000:20 1000:200 10000:1 10000:10"}
# Mosquitto drops QoS 0 to a subscriber once max_queued_messages packets wait for it (default
# 1000); tcpms once its --max-queued-bytes (default) wait. 100,000 packets of ~84 bytes is
# about 8 MiB, so Mosquitto is not made to drop where it would only have been slow.
MOSQ_MAX_QUEUED=${MOSQ_MAX_QUEUED:-100000}
for b in tcpms-server tcpms-bench; do
  [ -x "$B/$b" ] || { echo "missing $B/$b: build the release preset first" >&2; exit 1; }
done
[ -x "$MOSQUITTO" ] || { echo "missing $MOSQUITTO (apt-get install mosquitto)" >&2; exit 1; }
work=$(mktemp -d)
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap cleanup_all EXIT

# start NAME -> sets PID and ADDR (a fresh broker): tcpms, mosquitto or mosquitto-dup
start() {
  local name=$1 log="$work/$1.$RANDOM.log"
  : >"$log"
  if [ "$name" = tcpms ]; then
    "$B/tcpms-server" --protocol mqtt --listen 127.0.0.1:0 --threads "$THREADS" --no-admin >"$log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    ADDR=$(wait_listening "$log" "$PID")
    return
  fi
  local port conf="$work/mosquitto.$RANDOM.conf"
  port=$(free_port)
  cat >"$conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages $MOSQ_MAX_QUEUED
set_tcp_nodelay true
$([ "$name" = mosquitto-dup ] && echo "allow_duplicate_messages true")
log_dest stderr
log_type error
log_type warning
EOF
  run_mosquitto "$conf" "$log" "$port"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# row FILE KIND -> one Markdown table row body from a result
row() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); kind = sys.argv[2]
c, lat, cost = d["counters"], d["latency"], d.get("server_cost", {})
def t(ns):
    return f"{ns/1e3:.0f} us" if ns < 1e6 else f"{ns/1e6:.1f} ms" if ns < 1e9 else f"{ns/1e9:.2f} s"
fails = ", ".join(f"{k} {v}" for k, v in sorted(d.get("failures", {}).items())) or "0"
if kind == "conn":
    print(f"{c.get('subscribed', 0):,} | {c.get('subscribes_per_s', 0):,} | {cost.get('cpu_us_per_op', 0):.1f} | "
          f"{cost.get('rss_bytes_per_connection', 0):,.0f} | {t(lat['connack']['p50_ns'])} / {t(lat['connack']['p99_ns'])} | "
          f"{t(lat['suback']['p50_ns'])} / {t(lat['suback']['p99_ns'])} | {c.get('kernel.listen_drops', 0):,} | {fails}")
else:
    dl = lat.get("delivery", {})
    cpu = c.get("phase_server_cpu_ns_per_delivery", 0) / 1e3
    print(f"{c.get('publishes_per_s', 0):,} | {c.get('deliveries_per_s', 0):,} | {cpu:.2f} | "
          + " | ".join(t(dl.get(k, 0)) for k in ("p50_ns", "p99_ns", "p99.9_ns", "max_ns"))
          + f" | {c.get('lost', 0):,} of {c.get('expected_deliveries', 0):,} | {fails}")
EOF
}

echo "## MQTT: tcpms vs Mosquitto 2.0.11 ($(date -u +%Y-%m-%d), $(nproc) cores shared by broker and bench)"
echo
echo "tcpms-server \`--protocol mqtt --threads $THREADS --no-admin\`; Mosquitto $("$MOSQUITTO" -h 2>&1 | head -1 | awk '{print $3}')"
echo "(single-threaded) with \`persistence false\`, \`max_queued_messages $MOSQ_MAX_QUEUED\`, \`set_tcp_nodelay true\`."
echo "Every run starts its broker fresh. MQTT 3.1.1, clean sessions."
echo
echo "### Connect and subscribe: $IDLE_N clients, one subscription each"
echo
echo "| broker | subscribed | CONNECT+SUBSCRIBE/s | server CPU us per CONNECT+SUBSCRIBE | RSS bytes per idle client | CONNACK p50 / p99 | SUBACK p50 / p99 | listen drops | failures |"
echo "|---|---|---|---|---|---|---|---|---|"
for s in mosquitto tcpms; do
  start "$s"
  out="$work/conn-$s.json"
  bench "$out" mqtt-conn --target "$ADDR" -n "$IDLE_N" --hold "$HOLD" --server-pid "$PID"
  stop "$PID"
  echo "| $s | $(row "$out" conn) |"
done
echo
echo "\`tcpms-bench mqtt-conn -n $IDLE_N --hold $HOLD --server-pid PID\` (as fast as 1,000 connects in flight"
echo "allow): CPU over the whole run / clients subscribed; RSS after - RSS before over $IDLE_N."
echo

echo "### Fan-out: one topic, one publisher, QoS 0, 64-byte payloads, $DURATION s"
echo
echo "| subscribers | target publishes/s | broker | publishes/s | deliveries/s | server CPU us per delivery | p50 | p99 | p99.9 | max | lost | failures |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for spec in $FANOUT; do
  subs=${spec%%:*}
  rate=${spec##*:}
  for s in mosquitto mosquitto-dup tcpms; do
    start "$s"
    out="$work/fanout-$subs-$rate-$s.json"
    bench "$out" mqtt-fanout --target "$ADDR" --subscribers "$subs" --publishers 1 --publish-rate "$rate" \
      --duration "$DURATION" --server-pid "$PID"
    stop "$PID"
    echo "| $subs | $rate | $s | $(row "$out" fanout) |"
  done
done
echo
echo "mosquitto-dup: Mosquitto with \`allow_duplicate_messages true\` (deprecated in 2.0; it skips the"
echo "check that a message goes once to a client with overlapping subscriptions)."
echo "\`tcpms-bench mqtt-fanout --subscribers S --publishers 1 --publish-rate R --duration $DURATION --server-pid PID\`."
echo "Latency: from the publish's intended send time (open loop, stamped in the payload) to its"
echo "receipt by each subscriber. CPU per delivery: the broker's CPU from the moment every"
echo "subscriber was subscribed until the bench's first loop had every delivery, over the deliveries."

#!/usr/bin/env bash
# TLS and WebSocket: tcpms against Mosquitto (Debian's 2.0.11) in one run, both brokers with
# the same certificate (P-256, made here with openssl), on a Release build. Prints Markdown.
#
#   bench/transports_vs_mosquitto.sh [BUILD_DIR]      (default build/release)
#
# Sections (each broker started fresh per row, driven by tcpms-bench with --server-pid so
# every cost is the broker's own CPU time or RSS over what the bench completed):
#   idle:       mqtt-conn -n IDLE_N over tcp, tls and websocket (CONNECT + one SUBSCRIBE each,
#               held HOLD s): user-space bytes per idle client (RSS after - RSS before, over
#               IDLE_N) and CPU per CONNECT+SUBSCRIBE. Memory: not timing-sensitive.
#   handshakes: connect -n HS_N over TLS, full (--no-tls-resume) and resumed (tickets): server
#               CPU per connection (TCP accept, TLS handshake, close) and what that makes per
#               core-second; plain TCP beside it for the part that is not TLS. Timing: needs a
#               quiet machine.
#   fan-out:    mqtt-fanout over TLS, FANOUT_SUBS subscribers, 1 publisher at each FANOUT_RATES
#               publishes/s, QoS 0, 64-byte payloads, DURATION s: server CPU per delivery.
#               Timing: needs a quiet machine.
# SECTIONS="idle handshakes fanout" picks sections; memory-only runs: SECTIONS=idle.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/release}/bin
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
THREADS=${THREADS:-2}
IDLE_N=${IDLE_N:-19000}
HOLD=${HOLD:-2}
HS_N=${HS_N:-5000}
HS_PENDING=${HS_PENDING:-100}
FANOUT_SUBS=${FANOUT_SUBS:-1000}
FANOUT_RATES=${FANOUT_RATES:-"20 200"}
DURATION=${DURATION:-10}
SECTIONS=${SECTIONS:-"idle handshakes fanout"}
for b in tcpms-server tcpms-bench; do
  [ -x "$B/$b" ] || { echo "missing $B/$b: build the release preset first" >&2; exit 1; }
done
[ -x "$MOSQUITTO" ] || { echo "missing $MOSQUITTO (apt-get install mosquitto)" >&2; exit 1; }
work=$(mktemp -d)
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap cleanup_all EXIT

make_certificate "$work"  # one for both brokers

# start BROKER TRANSPORT -> sets PID and ADDR: a fresh broker whose ADDR speaks TRANSPORT
# (tcp, tls, websocket).
start() {
  local name=$1 transport=$2 log="$work/$1-$2.$RANDOM.log"
  : >"$log"
  if [ "$name" = tcpms ]; then
    local conf="$work/tcpms.$RANDOM.toml"
    case $transport in
      tcp) printf 'listen = "127.0.0.1:0"\n' >"$conf" ;;
      tls) printf '[[listeners]]\nbind = "127.0.0.1:0"\ntls.cert_file = "%s"\ntls.key_file = "%s"\n' \
             "$work/server.pem" "$work/server.key" >"$conf" ;;
      websocket) printf '[[listeners]]\nbind = "127.0.0.1:0"\nwebsocket = true\n' >"$conf" ;;
    esac
    "$B/tcpms-server" --protocol mqtt --config "$conf" --threads "$THREADS" --no-admin >"$log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    ADDR=$(wait_listening "$log" "$PID")
    return
  fi
  local port plain conf="$work/mosquitto.$RANDOM.conf"
  port=$(free_port)
  plain=$(free_port)
  {
    echo "user root"   # keeps the key readable (the bench runs as root)
    echo "persistence false"
    echo "set_tcp_nodelay true"
    echo "log_dest stderr"
    echo "log_type error"
    echo "log_type warning"
    case $transport in
      tcp) echo "listener $port 127.0.0.1" ;;
      tls) echo "listener $port 127.0.0.1"
           echo "certfile $work/server.pem"; echo "keyfile $work/server.key"; echo "cafile $work/ca.pem" ;;
      # Mosquitto 2.0.11 exits ("Unable to start any listening sockets") when its only
      # listener is a WebSocket one: give it a plain one too, unused.
      websocket) echo "listener $plain 127.0.0.1"; echo "listener $port"; echo "protocol websockets" ;;
    esac
    echo "allow_anonymous true"
  } >"$conf"
  (ulimit -n "$(ulimit -Hn)"; exec "$MOSQUITTO" -c "$conf") >"$log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do
    if ss -ltn 2>/dev/null | grep -q ":$port "; then ADDR=127.0.0.1:$port; return 0; fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "mosquitto did not start" >&2; cat "$log" >&2; exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

transport_flags() {
  case $1 in
    tcp) ;;
    tls) echo "--tls --tls-ca-file $work/ca.pem" ;;
    websocket) echo "--websocket" ;;
  esac
}

row() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); kind = sys.argv[2]
c, lat, cost = d["counters"], d.get("latency", {}), d.get("server_cost", {})
fails = ", ".join(f"{k} {v}" for k, v in sorted(d.get("failures", {}).items())) or "0"
cpu = cost.get("cpu_us_per_op", 0)
if kind == "conn":
    print(f"{c.get('subscribed', 0):,} | {cost.get('rss_bytes_per_connection', 0):,.0f} | {cpu:.1f} | {fails}")
elif kind == "hs":
    ops = c.get("established", 0)
    rate = c.get("connects_per_s", 0)
    per_core = 1e6 / cpu if cpu else 0
    print(f"{ops:,} | {rate:,.0f} | {cpu:.1f} | {per_core:,.0f} | {fails}")
else:
    dl = lat.get("delivery", {})
    t = lambda ns: f"{ns/1e3:.0f} us" if ns < 1e6 else f"{ns/1e6:.1f} ms" if ns < 1e9 else f"{ns/1e9:.2f} s"
    print(f"{c.get('deliveries_per_s', 0):,} | {c.get('phase_server_cpu_ns_per_delivery', 0)/1e3:.2f} | "
          f"{t(dl.get('p50_ns', 0))} | {t(dl.get('p99_ns', 0))} | {c.get('lost', 0):,} of {c.get('expected_deliveries', 0):,} | {fails}")
PY
}

echo "## Transports: tcpms vs Mosquitto 2.0.11 ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores shared by broker and bench)"
echo
echo "tcpms-server \`--threads $THREADS\` with a [[listeners]] table per transport; Mosquitto with \`persistence false\`;"
echo "the same P-256 certificate for both; TLS 1.3 unless said (what both negotiate by default)."

if [[ " $SECTIONS " == *" idle "* ]]; then
  echo
  echo "### Idle connections: $IDLE_N clients, one subscription each (memory: measured any time)"
  echo
  echo "| transport | broker | subscribed | RSS bytes per idle client | server CPU us per CONNECT+SUBSCRIBE | failures |"
  echo "|---|---|---|---|---|---|"
  for t in tcp tls websocket; do
    for s in mosquitto tcpms; do
      start "$s" "$t"
      out="$work/idle-$t-$s.json"
      # shellcheck disable=SC2046
      bench "$out" mqtt-conn --target "$ADDR" -n "$IDLE_N" --hold "$HOLD" --server-pid "$PID" $(transport_flags "$t")
      stop "$PID"
      echo "| $t | $s | $(row "$out" conn) |"
    done
  done
  echo
  echo "\`tcpms-bench mqtt-conn -n $IDLE_N --hold $HOLD --server-pid PID [--tls --tls-ca-file CA | --websocket]\`"
fi

if [[ " $SECTIONS " == *" handshakes "* ]]; then
  echo
  echo "### TLS handshakes: $HS_N connections, $HS_PENDING in flight (timing: quiet machine only)"
  echo
  echo "| handshake | broker | connections | connections/s | server CPU us per connection | per core-second | failures |"
  echo "|---|---|---|---|---|---|---|"
  for mode in tcp full resumed; do
    for s in mosquitto tcpms; do
      t=tls
      flags="--tls --tls-ca-file $work/ca.pem"
      [ "$mode" = tcp ] && { t=tcp; flags=""; }
      [ "$mode" = full ] && flags="$flags --no-tls-resume"
      start "$s" "$t"
      out="$work/hs-$mode-$s.json"
      # shellcheck disable=SC2086
      bench "$out" connect --target "$ADDR" -n "$HS_N" --max-pending "$HS_PENDING" --server-pid "$PID" $flags
      stop "$PID"
      echo "| $mode | $s | $(row "$out" hs) |"
    done
  done
  echo
  echo "\`tcpms-bench connect -n $HS_N --max-pending $HS_PENDING --server-pid PID [--tls --tls-ca-file CA [--no-tls-resume]]\`:"
  echo "server CPU over the run / connections established (accept, handshake, close); per core-second = 1e6 / that."
fi

if [[ " $SECTIONS " == *" fanout "* ]]; then
  echo
  echo "### Fan-out over TLS: $FANOUT_SUBS subscribers, one publisher, QoS 0, 64-byte payloads, $DURATION s (timing: quiet machine only)"
  echo
  echo "| publishes/s | broker | deliveries/s | server CPU us per delivery | p50 | p99 | lost | failures |"
  echo "|---|---|---|---|---|---|---|---|"
  for rate in $FANOUT_RATES; do
    for s in mosquitto tcpms; do
      start "$s" tls
      out="$work/fanout-$rate-$s.json"
      bench "$out" mqtt-fanout --target "$ADDR" --subscribers "$FANOUT_SUBS" --publishers 1 \
        --publish-rate "$rate" --duration "$DURATION" --server-pid "$PID" --tls --tls-ca-file "$work/ca.pem"
      stop "$PID"
      echo "| $rate | $s | $(row "$out" fanout) |"
    done
  done
  echo
  echo "\`tcpms-bench mqtt-fanout --subscribers $FANOUT_SUBS --publishers 1 --publish-rate R --duration $DURATION --server-pid PID --tls --tls-ca-file CA\`"
fi
